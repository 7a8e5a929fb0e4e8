"""Reports: ended interactions are queued (report_pending) and folded into the rollups in
batches, off their own write; exactly once, read-your-writes, on SQLite and PostgreSQL.
The scripted data set (C1..C7) is test_reports.py's."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import pytest
from sqlalchemy import text

from crm_core import interactions as I
from crm_core import reports as R
from crm_core.db import Database
from tests.crm_core.conftest import FAST_HASHER  # noqa: F401
from tests.report_data import T, add_agents, add_contacts
from tests.report_data import contact as _contact

pytestmark = pytest.mark.timeout(120)
WEEKS = R.Range(date(2026, 10, 26), date(2026, 11, 15), "UTC", "week")


@pytest.fixture
async def scripted(store):
    return await add_contacts(store, await add_agents(store))


def _rows(rep, *fields):
    return [tuple(r[f] for f in fields) for r in rep["rows"]]


async def _count(db, sql: str) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def _totals(db) -> list[tuple]:
    rep = await R.contact_report(db, WEEKS, by="disposition", totals=True)
    return _rows(rep, "key", "contacts", "answered", "aht_s", "csat_avg", "csat_responses")


async def test_queued_then_folded_exactly_once(store, scripted):
    # the interactions' own writes only queued them: the rollups are still empty
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 7
    assert await _count(store.db, "SELECT count(*) FROM report_contacts") == 0
    assert await R.fold_pending(store.db) == 7
    assert await R.fold_pending(store.db) == 0  # nothing twice
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 0
    assert await _count(store.db, "SELECT COALESCE(sum(contacts), 0) FROM report_contacts") == 7
    folded = await _totals(store.db)
    assert folded == [("(none)", 4, 0, None, None, 0), ("follow_up", 1, 1, 330.0, 2.0, 1),
                      ("resolved", 2, 2, 540.0, 5.0, 1)]
    await R.rebuild(store.db)
    assert await _totals(store.db) == folded


async def test_a_report_reads_its_writes(store, scripted):
    """No fold before the read: the report folds what is queued first."""
    before = await _totals(store.db)
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 0
    await _contact(store, cust=scripted["reg"], at=T(11, 12, 10, 0), wait=5, talk=60, wrap=10,
                   agent=scripted["a2"], dispo="resolved", csat=4)
    after = dict((r[0], r[1:]) for r in await _totals(store.db))
    assert after["resolved"][0] == dict((r[0], r[1:]) for r in before)["resolved"][0] + 1


async def test_changes_after_folding_move_the_counters(store, scripted):
    iid = await _contact(store, cust=scripted["reg"], at=T(11, 12, 10, 0), wait=5, talk=60, wrap=10,
                         agent=scripted["a1"], dispo="follow_up")
    day = R.Range(date(2026, 11, 12), date(2026, 11, 12), "UTC", "day")

    async def by_dispo():
        rep = await R.contact_report(store.db, day, by="disposition", totals=True)
        return [r for r in _rows(rep, "key", "contacts", "csat_avg", "fcr_rate") if r[1]]

    assert await by_dispo() == [("follow_up", 1, None, 0.0)]  # folded
    # a new disposition after folding: the old counters leave at once, the new ones are queued
    await store.set_disposition(iid, "resolved", agent_id=scripted["a1"])
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 1
    assert await by_dispo() == [("resolved", 1, None, 0.0)]  # not FCR: a repeat (C2..C4 the day before)
    await store.record_survey(4, interaction_id=iid)  # a score after folding
    await store.record_survey(2, interaction_id=iid)  # and a second one while still queued
    assert await by_dispo() == [("resolved", 1, 2.0, 0.0)]
    live = await _totals(store.db)
    await R.rebuild(store.db)
    assert await _totals(store.db) == live


async def test_two_folders_at_once_count_each_interaction_once(store, scripted, db_url):
    for n in range(12):  # more queued work, folded two at a time by three folders at once
        await _contact(store, cust=scripted["reg"], at=T(11, 12, 10, n), wait=5, talk=60, wrap=10,
                       agent=scripted["a2"], dispo="resolved", csat=3)
    url, schema = db_url
    other = Database(url, schema=schema)  # another process's connections (and SQLite writer)
    try:
        done = await asyncio.gather(
            R.fold_pending(store.db, limit=2), R.fold_pending(other, limit=2), R.fold_pending(other, limit=3)
        )
    finally:
        await other.close()
    assert sum(done) == 19
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 0
    assert await _count(store.db, "SELECT COALESCE(sum(contacts), 0) FROM report_contacts") == 19
    assert await _count(store.db, "SELECT COALESCE(sum(contacts), 0) FROM report_contacts_agent_day") == 19
    live = await _totals(store.db)
    await R.rebuild(store.db)
    assert await _totals(store.db) == live


async def test_the_background_folds_what_is_old_enough(store, scripted, monkeypatch):
    monkeypatch.setattr(R, "FOLD_AGE_S", 0.0)
    monkeypatch.setattr(I, "FOLD_EVERY_S", 0.01)
    await _contact(store, cust=scripted["reg"], at=T(11, 12, 10, 0), wait=5, talk=60, wrap=10,
                   agent=scripted["a2"], dispo="resolved")
    deadline = time.monotonic() + 30
    while await _count(store.db, "SELECT count(*) FROM report_pending") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 0
    assert await _count(store.db, "SELECT COALESCE(sum(contacts), 0) FROM report_contacts") == 8
    # queued interactions younger than FOLD_AGE_S wait (a survey score may still come)
    monkeypatch.setattr(R, "FOLD_AGE_S", 3600.0)
    await _contact(store, cust=scripted["reg"], at=T(11, 12, 11, 0), wait=5, talk=60, wrap=10,
                   agent=scripted["a2"], dispo="resolved")
    assert await R.fold_pending(store.db, older_than=time.time() - R.FOLD_AGE_S) == 0
    assert await _count(store.db, "SELECT count(*) FROM report_pending") == 1


async def test_agent_time_written_together_is_summed(store, scripted):
    """Agent state changes that share a group commit batch are summed into one row per key."""
    a1, a2 = scripted["a1"], scripted["a2"]
    await asyncio.gather(*(
        R.add_agent_time(store.db, agent, team, "busy", None, T(11, 13, 9, n), T(11, 13, 9, n, 30))
        for n in range(6) for agent, team in ((a1, "north"), (a2, "south"))
    ), R.add_agent_time(store.db, a1, "north", "ready", None, T(11, 13, 9, 50), T(11, 13, 10, 10)))
    occ = await R.agent_report(store.db, R.Range(date(2026, 11, 13), date(2026, 11, 13), "UTC", "day"))
    assert sorted(_rows(occ, "key", "ready_s", "busy_s")) == sorted(
        [(str(a1), 1200.0, 180.0), (str(a2), 0.0, 180.0)])
    q = await R.agent_report(store.db, R.Range(date(2026, 11, 13), date(2026, 11, 13), "UTC", "15m"))
    assert [r for r in _rows(q, "interval", "key", "ready_s") if r[1] == str(a1) and r[2]] == [
        ("2026-11-13 09:45", str(a1), 600.0), ("2026-11-13 10:00", str(a1), 600.0)]
