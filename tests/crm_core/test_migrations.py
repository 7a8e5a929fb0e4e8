"""The Alembic revisions create exactly the tables of crm_core.models, on both backends."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from crm_core.migrate import downgrade
from crm_core.models import Base


def _diff(conn):
    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
    )
    return compare_metadata(ctx, Base.metadata)


async def test_migrated_schema_matches_the_models(database):
    async with database.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_expected_indexes_exist(database):
    def indexes(conn):
        insp = inspect(conn)
        out = {}
        for table in ("contact_points", "interactions", "tickets", "customers"):
            names = {i["name"] for i in insp.get_indexes(table)}
            names |= {u["name"] for u in insp.get_unique_constraints(table)}
            out[table] = names
        return out

    async with database.engine.connect() as conn:
        found = await conn.run_sync(indexes)
    assert "uq_contact_points_kind_value" in found["contact_points"]
    assert "ix_interactions_customer_id_created_at" in found["interactions"]
    assert "ix_tickets_customer_id_status" in found["tickets"]
    assert "uq_tickets_number" in found["tickets"]
    assert "ix_customers_name_key" in found["customers"]


async def test_downgrade_to_base_and_up_again(database):
    await downgrade(database.engine, "base")

    def tables(conn):
        return set(inspect(conn).get_table_names()) - {"alembic_version"}

    async with database.engine.connect() as conn:
        assert await conn.run_sync(tables) == set()
    await database.upgrade()
    async with database.engine.connect() as conn:
        assert await conn.run_sync(tables) == set(Base.metadata.tables)
