"""Reports over real HTTP (issue 16): the API serves the same figures as crm_core/reports.py's
hand-checked data set (tests/crm_core/test_reports.py), as JSON and CSV, scoped to a supervisor's
teams; a one-click callback to a customer at risk; the daily summary goes through a real SMTP
smarthost (aiosmtpd) once per local day; agents' state changes become agent time."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.services import report_mail
from callcenter.services.report_feed import ReportFeed
from callcenter.settings import load_settings
from crm_core import reports as R
from tests.callcenter.email.harness import sink_server
from tests.callcenter.voice_harness import running_center, seed_people
from tests.report_data import FIELDS, UTC_DAYS, T, add_agents, add_contacts

pytestmark = pytest.mark.timeout(120)


async def scripted(store: Any) -> dict[str, Any]:
    """The data set of tests/report_data.py (C1..C5), with the shipped catalog."""
    await seed_people(store, agents=0)
    ids = await add_agents(store)
    await store.upsert_queue("support", teams=["north"])
    ids = await add_contacts(store, ids, dst=False)
    ada = await store.create_user("ada", "admin-password", roles=["admin"])
    sue = await store.create_user("sue", "super-password", roles=["supervisor"], team="north")
    ann = await store.create_user("ann", "agent-password", roles=["agent"], team="north")
    tokens = {}
    for u, role in ((ada, "admin"), (sue, "supervisor"), (ann, "agent")):
        tokens[role] = (await store.create_api_token(u.id, "test", role))[1]
    return {"vip": ids["vip"], "reg": ids["reg"], "a1": ids["a1"], "sue": sue.id, "tokens": tokens}


async def test_api_serves_the_same_figures_as_json_and_csv(database) -> None:
    store = build_store(load_settings(env={}), database)
    ids = await scripted(store)
    q = "from=2026-11-10&to=2026-11-11&tz=UTC&interval=day"
    async with running_center(database) as rc, aiohttp.ClientSession() as http:

        def get(path: str, role: str = "admin") -> Any:
            return http.get(
                f"{rc.base}/api/v1{path}", headers={"Authorization": f"Bearer {ids['tokens'][role]}"}
            )

        r = await get(f"/reports/contacts?{q}")
        assert r.status == 200
        rep = await r.json()
        assert [tuple(row[f] for f in FIELDS) for row in rep["rows"]] == UTC_DAYS
        r = await get(f"/reports/contacts?{q}&format=csv")
        assert r.status == 200 and r.content_type == "text/csv"
        assert "attachment" in r.headers["Content-Disposition"]
        lines = list(csv.reader(io.StringIO(await r.text())))
        assert lines[0] == rep["columns"]
        assert lines[1:] == [[R.csv_value(row[c]) for c in rep["columns"]] for row in rep["rows"]]
        assert lines[2][rep["columns"].index("aht_s")] == "225"  # 225.0 in JSON

        # a supervisor of team north: north's agent (C1, C5) and north's queue (support: C5)
        r = await get(f"/reports/contacts?{q}&totals=1&by=agent", "supervisor")
        assert [(row["key"], row["contacts"]) for row in (await r.json())["rows"]] == [(str(ids["a1"]), 2)]
        assert (await get(f"/reports/contacts?{q}", "agent")).status == 403
        r = await get("/reports/contacts?tz=Mars/Base")
        assert r.status == 400 and "time zone" in (await r.json())["error"]["message"]
        assert (await get("/reports/contacts?interval=minute")).status == 400

        tiers = await (await get(f"/reports/tiers?{q}")).json()
        assert [(t["tier"], t["asa_s"], t["service_level"]) for t in tiers["rows"]] == [
            ("regular", 30.0, 0.0),
            ("vip", 7.5, 1.0),
        ]
        for path in (
            "/reports/occupancy",
            "/reports/not-ready",
            "/reports/tickets",
            "/reports/customers",
            "/reports/customers/movement",
            "/reports/customers/at-risk",
        ):
            r = await get(f"{path}?{q}&format=csv")
            assert r.status == 200 and r.content_type == "text/csv", path


async def test_callback_to_a_customer_at_risk_and_subscription(database) -> None:
    store = build_store(load_settings(env={}), database)
    ids = await scripted(store)
    now = datetime.now(UTC)
    # Rob: three contacts within the last 7 days (from now), and two complaints
    for _ in range(3):
        i = await store.open_interaction("voice", "inbound", ids["reg"], queue="billing")
        await store.set_state(i.id, "abandoned")
    for _ in range(2):
        await store.create_ticket(ids["reg"], "complaint", "Billing complaint")
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        h = {"Authorization": f"Bearer {ids['tokens']['supervisor']}"}
        risk = await (await http.get(f"{rc.base}/api/v1/reports/customers/at-risk", headers=h)).json()
        rob = [r for r in risk["rows"] if r["customer_id"] == ids["reg"]]
        assert (
            rob
            and rob[0]["reasons"] == "repeated_complaints repeated_contacts"
            and rob[0]["recent_contacts"] >= 3
        )
        r = await http.post(f"{rc.base}/api/v1/reports/customers/at-risk/{ids['reg']}/callback", headers=h)
        assert r.status == 201, await r.text()
        cb = await r.json()
        assert cb["type"] == "callback_scheduled" and cb["number"] == "+12025550102"
        assert cb["customer_id"] == ids["reg"]
        stored = await store.get_interaction(cb["interaction_id"])
        assert stored.direction == "outbound" and stored.customer_id == ids["reg"]
        assert (
            await http.post(f"{rc.base}/api/v1/reports/customers/at-risk/999999/callback", headers=h)
        ).status == 400

        url = f"{rc.base}/api/v1/reports/subscription"
        assert (await (await http.get(url, headers=h)).json()) == {"subscribed": False}
        r = await http.put(url, headers=h, json={"email": "not-an-address", "tz": "UTC"})
        assert r.status == 400
        r = await http.put(url, headers=h, json={"email": "sue@example.com", "tz": "Europe/Paris"})
        assert r.status == 200 and (await r.json())["tz"] == "Europe/Paris"
        assert (await (await http.get(url, headers=h)).json())["email"] == "sue@example.com"
        assert (await http.delete(url, headers=h)).status == 200
        assert (await (await http.get(url, headers=h)).json()) == {"subscribed": False}
    assert now  # (the callback is due now)


async def test_daily_summary_goes_once_per_local_day_through_the_smarthost(database) -> None:
    store = build_store(load_settings(env={}), database)
    ids = await scripted(store)
    ada = await store.get_user("ada")
    await report_mail.subscribe(store.db, ids["sue"], "sue@example.com", "UTC")
    await report_mail.subscribe(store.db, ada.id, "ada@example.com", "America/New_York")
    async with sink_server() as sink:
        settings = load_settings(
            env={"CC_EMAIL__SMARTHOST_PORT": str(sink.port), "CC_EMAIL__ADDRESS": "reports@example.com"}
        )
        # 00:10 UTC on Nov 12: within the 15 minutes after midnight, nothing is due yet for Nov 11
        assert await report_mail.send_due(store, settings, now=T(11, 12, 0, 10)) == 2  # ...for Nov 10
        got = {}
        for _ in range(2):
            _from, rcpt, msg = await sink.next()
            got[rcpt[0]] = msg
        assert "2026-11-10" in got["sue@example.com"]["Subject"]
        # sue (team north, UTC) on Nov 10: C1 only
        body = got["sue@example.com"].get_content()
        assert "Contacts: 1  offered: 1  answered: 1" in body and "Service level: 100.0 %" in body
        assert (await report_mail.send_due(store, settings, now=T(11, 12, 0, 12))) == 0  # once a day
        # 00:20 UTC: sue's Nov 11 is due; Ada (New York: 19:20 on Nov 11) is not
        assert await report_mail.send_due(store, settings, now=T(11, 12, 0, 20)) == 1
        _from, rcpt, msg = await sink.next()
        assert rcpt == ["sue@example.com"] and "2026-11-11" in msg["Subject"]
        # team north's Nov 11: C5 (agent a1, queue support): SL 100 %, ASA 5.0, AHT 120.0
        body = msg.get_content()
        assert "Contacts: 1  offered: 1  answered: 1" in body and "ASA: 5.0 s  AHT: 120.0 s" in body
        assert msg["Auto-Submitted"] == "auto-replied"
        # Ada (admin: everything) in New York, after her midnight: Nov 11 local = C5 only
        assert await report_mail.send_due(store, settings, now=T(11, 12, 5, 20)) == 1
        _from, rcpt, msg = await sink.next()
        assert rcpt == ["ada@example.com"] and "2026-11-11 (America/New_York)" in msg.get_content()
        # a refused message is tried again on the next tick
        sink.refuse = True
        assert await report_mail.send_due(store, settings, now=T(11, 13, 0, 20)) == 0
        sink.refuse = False
        assert await report_mail.send_due(store, settings, now=T(11, 13, 0, 21)) == 1


class _Directory:
    def __init__(self) -> None:
        self.on_change: list[Any] = []
        self.state: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, Any] = {}

    def status(self, agent_id: str) -> dict[str, Any]:
        return self.state[agent_id]


async def test_agent_state_changes_become_agent_time(database) -> None:
    store = build_store(load_settings(env={}), database)
    await store.create_team("north")
    a = await store.create_user("a1", "agent-password-1", team="north")
    clock = [T(11, 10, 23, 50)]
    directory = _Directory()
    directory.agents[str(a.id)] = SimpleNamespace(teams=("north",))
    center = SimpleNamespace(directory=directory, store=store)
    feed = ReportFeed(center, load_settings(env={}), utc=lambda: clock[0])
    directory.on_change.append(feed.agent_changed)

    def change(at: datetime, state: str, reason: str | None = None) -> None:
        clock[0] = at
        directory.state[str(a.id)] = {"state": state, "reason": reason}
        for cb in directory.on_change:
            cb(str(a.id))

    change(T(11, 10, 23, 50), "not_ready", "lunch")
    change(T(11, 11, 0, 20), "ready")
    change(T(11, 11, 0, 25), "ready")  # no change: nothing written
    change(T(11, 11, 0, 30), "busy")
    change(T(11, 11, 0, 40), "wrap_up")
    change(T(11, 11, 0, 45), "offline")
    await feed.flush()
    rng = R.Range(T(11, 10, 0, 0).date(), T(11, 11, 0, 0).date(), "UTC", "day")
    occ = await R.agent_report(store.db, rng)
    assert [
        (r["interval"], r["ready_s"], r["busy_s"], r["wrap_up_s"], r["not_ready_s"], r["occupancy"])
        for r in occ["rows"]
    ] == [("2026-11-10", 0.0, 0.0, 0.0, 600.0, None), ("2026-11-11", 600.0, 600.0, 300.0, 1200.0, 0.6)]
    team = await R.agent_report(store.db, rng, by="team", scope=R.Scope(teams=frozenset({"north"})))
    assert [r["key"] for r in team["rows"]] == ["north", "north"]


def test_cli_rebuild_backfills_existing_interactions(tmp_path) -> None:
    """`callcenter reports rebuild` (a real subprocess) on a database whose interactions ended
    before the rollup existed: the figures appear, the same as the live rollup gives."""
    import asyncio
    import json
    import os
    import subprocess
    import sys

    url = f"sqlite+aiosqlite:///{tmp_path}/cc.db"
    env = {**os.environ, "CC_DATABASE_URL": url, "CC_ADMIN_PASSWORD": "admin-password-1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "callcenter.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    assert cli("db", "upgrade").returncode == 0

    async def seed_and_forget() -> None:
        from crm_core.db import Database

        db = Database(url)
        store = build_store(load_settings(env={}), db)
        await scripted(store)
        async with db.engine.begin() as conn:  # as if they had ended before the upgrade (not queued)
            for t in (*R.TABLES, "report_pending"):
                await conn.exec_driver_sql(f"DELETE FROM {t}")
        assert (await R.contact_report(db, R.Range(T(11, 10, 0, 0).date(), T(11, 11, 0, 0).date())))[
            "rows"
        ] == []
        await db.close()

    asyncio.run(seed_and_forget())
    done = cli("reports", "rebuild")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["interactions"] == 5

    async def figures() -> list[tuple[Any, ...]]:
        from crm_core.db import Database

        db = Database(url)
        rep = await R.contact_report(
            db, R.Range(T(11, 10, 0, 0).date(), T(11, 11, 0, 0).date(), "UTC", "day")
        )
        await db.close()
        return [tuple(row[f] for f in FIELDS) for row in rep["rows"]]

    assert asyncio.run(figures()) == UTC_DAYS


async def test_the_daily_tick_sends_and_snapshots_on_its_own(database) -> None:
    """run_daily with an injected clock and a short period: a due summary goes out, the
    customers are snapshotted once, and it stops when asked."""
    import asyncio

    store = build_store(load_settings(env={}), database)
    ids = await scripted(store)
    await report_mail.subscribe(store.db, ids["sue"], "sue@example.com", "UTC")
    async with sink_server() as sink:
        settings = load_settings(env={"CC_EMAIL__SMARTHOST_PORT": str(sink.port)})
        stop = asyncio.Event()
        task = asyncio.ensure_future(
            report_mail.run_daily(store, settings, lambda: T(11, 12, 0, 20), 0.05, stop)
        )
        _from, rcpt, msg = await sink.next()
        assert rcpt == ["sue@example.com"] and "2026-11-11" in msg["Subject"]
        stop.set()
        await asyncio.wait_for(task, 10)
    async with store.db.engine.connect() as conn:
        from sqlalchemy import text

        days = (await conn.execute(text("SELECT DISTINCT day FROM report_customer_counts"))).all()
    assert days == [(int(T(11, 12, 0, 0).timestamp() // 86400),)]
