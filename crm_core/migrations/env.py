"""Alembic environment: always handed a live connection by crm_core.migrate."""
from __future__ import annotations

from alembic import context

import crm_core.catalog  # noqa: F401  (its tables join Base.metadata)
import crm_core.callbacks  # noqa: F401  (likewise)
import crm_core.campaigns  # noqa: F401  (likewise)
import crm_core.chat  # noqa: F401  (likewise)
import crm_core.email  # noqa: F401  (likewise)
import crm_core.hours  # noqa: F401  (likewise)
import crm_core.web_sessions  # noqa: F401  (likewise)
from crm_core.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `callcenter db upgrade` (crm_core.migrate.upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
