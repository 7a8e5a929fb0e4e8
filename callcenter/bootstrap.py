"""First-start work shared by the CLI and `make run`: migrate, seed from YAML, add users, demo data."""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import time
from typing import Any

from sqlalchemy import func, select

from callcenter.settings import Settings, read_yaml_mapping
from crm_core.catalog import Queue, Skill
from crm_core.db import Database
from crm_core.models import DispositionCode, Team, User
from crm_core.rules import Rules
from crm_core.store import CrmStore

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> CrmStore:
    db = Database(settings.database.url, schema=settings.database.schema_name)
    rules_path = settings.config_path(settings.crm.rules_file)
    rules = Rules.from_yaml(rules_path) if rules_path.exists() else Rules.default()
    return CrmStore(db, rules, default_region=settings.crm.default_region)


def load_seed(settings: Settings) -> dict[str, Any]:
    return read_yaml_mapping(settings.config_path(settings.seed_file))


async def upgrade_and_seed(settings: Settings) -> str:
    """Apply migrations; fill each empty catalog table from seed.yaml; create the first admin."""
    store = open_store(settings)
    try:
        await store.db.upgrade()
        return await seed_catalog(store, load_seed(settings))
    finally:
        await store.db.close()


async def seed_catalog(store: CrmStore, seed: dict[str, Any]) -> str:
    done = []
    db = store.db
    async with db.session.begin() as s:
        if not await _count(s, Skill):
            s.add_all(Skill(name=x["name"], label=x.get("label", x["name"])) for x in seed.get("skills", []))
            done.append("skills")
        if not await _count(s, Queue):
            s.add_all(Queue(name=q["name"], label=q.get("label", q["name"]), skills=q.get("skills", {}),
                            sl_target_s=q.get("sl_target_s", 20), sl_target_pct=q.get("sl_target_pct", 80),
                            record=bool(q.get("record", False)))
                      for q in seed.get("queues", []))
            done.append("queues")
        no_codes = not await _count(s, DispositionCode)
        if not await _count(s, Team):
            s.add_all(Team(name=t["name"], label=t.get("label")) for t in seed.get("teams", []))
            done.append("teams")
        has_users = await _count(s, User)
    if no_codes and await store.seed_disposition_codes():  # the codes live in crm_rules.yaml
        done.append("dispositions")
    if not has_users and seed.get("admin"):
        username = seed["admin"].get("username", "admin")
        password = os.environ.get("CC_ADMIN_PASSWORD")
        if not password:
            password = secrets.token_urlsafe(12)
            print(f"callcenter: created admin {username!r} with password {password!r} "
                  "(shown once; set CC_ADMIN_PASSWORD to choose it)", flush=True)
        await store.create_user(username, password, roles=["admin"], actor="seed")
        done.append("admin")
    return f"seeded: {', '.join(done)}" if done else "nothing to seed"


async def _count(s: Any, model: Any) -> int:
    return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def add_user(settings: Settings, args: argparse.Namespace, password: str,
                   skills: dict[str, int]) -> int:
    store = open_store(settings)
    try:
        user = await store.create_user(
            args.username, password, roles=[args.role], display_name=args.name, team=args.team,
            extension=args.extension, skills=skills, actor="cli",
            capacities=getattr(args, "capacities", None) or None,
        )
        return user.id
    finally:
        await store.db.close()


async def demo_seed(settings: Settings, customers: int, per_customer: int, rng_seed: int,
                    progress: bool) -> float:
    from crm_core.demo import seed_demo

    store = open_store(settings)
    try:
        t0 = time.perf_counter()
        await seed_demo(store.db, customers=customers, interactions_per_customer=per_customer,
                        rng_seed=rng_seed, rules=store.rules, progress=progress)
        return time.perf_counter() - t0
    finally:
        await store.db.close()
