"""crm_core fixtures: a CrmStore over the migrated `database` (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import crm_core.callbacks  # noqa: F401  (its tables are part of the migrated schema)
import crm_core.catalog  # noqa: F401  (its tables are part of the migrated schema)
import crm_core.campaigns  # noqa: F401  (likewise)
import crm_core.chat  # noqa: F401  (likewise)
import crm_core.web_sessions  # noqa: F401  (likewise)
from crm_core.rules import Rules
from crm_core.store import CrmStore

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def rules() -> Rules:
    return Rules.default()


@pytest.fixture
async def store(database, rules) -> CrmStore:
    s = CrmStore(database, rules, "US", password_hasher=FAST_HASHER)
    await s.seed_disposition_codes()
    return s


async def count_rows(db, model, *where) -> int:
    from sqlalchemy import func, select

    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where)))
                   .scalar_one())
