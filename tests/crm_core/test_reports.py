"""Reports (issue 16): every figure checked against a scripted data set, answers worked out by
hand below, on SQLite and PostgreSQL. The rollup is kept up to date by the store's own writes
(set_state, set_disposition, record_survey); the backfill (`rebuild`) must give the same figures.

The data set (times UTC, 2026; Nov 10 is a Tuesday):
  C1 VIP  voice billing  arrives 11-10 23:50:00, waits 10 s, talks 900 s (past midnight), wraps 60 s,
          agent a1 (team north), disposition `resolved` given after wrap-up, CSAT 5 after wrap-up
  C2 reg  voice billing  arrives 11-11 00:10:00, waits 30 s (over the 20 s SL), talks 300, wraps 30,
          agent a2 (team south), `follow_up`, transferred (two transfer events: counted once), CSAT 2
  C3 reg  voice billing  arrives 00:20:00, abandons after 3 s: a short abandon (< 5 s)
  C4 reg  voice billing  arrives 00:30:00, abandons after 60 s
  C5 VIP  chat support   arrives 05:10:00 (00:10 in New York), waits 5 s, talks 100, wraps 20, agent a1,
          `resolved`, but a repeat (C1 was 5 h 20 min before): not first-contact resolution
  C6, C7  voice general  abandon after 10 s; 11-01 04:30 UTC (00:30 EDT) and 11-02 04:30 UTC
          (23:30 EST): both on New York's Nov 1, the 25-hour day when DST ended
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from crm_core import reports as R
from tests.crm_core.conftest import FAST_HASHER  # noqa: F401
from tests.report_data import FIELDS, UTC_DAYS, T, add_agents, add_contacts
from tests.report_data import contact as _contact  # noqa: F401  (for tests that add contacts)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def scripted(store):
    return await add_contacts(store, await add_agents(store))


def _rows(rep, *fields):
    return [tuple(r[f] for f in fields) for r in rep["rows"]]


async def _same_after_rebuild(db, *reports):
    """The backfill gives exactly what the live rollup gave."""
    before = [await fn() for fn in reports]
    res = await R.rebuild(db)
    assert res["interactions"] == 7
    after = [await fn() for fn in reports]
    assert after == before


async def test_contacts_per_utc_day_and_backfill_agrees(store, scripted):
    db = store.db

    async def utc_days():
        return await R.contact_report(db, R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "day"))

    assert _rows(await utc_days(), *FIELDS) == UTC_DAYS
    await _same_after_rebuild(db, utc_days)
    assert _rows(await utc_days(), *FIELDS) == UTC_DAYS


async def test_new_york_days_move_the_evening_contacts_to_the_day_before(store, scripted):
    rep = await R.contact_report(
        store.db, R.Range(date(2026, 11, 10), date(2026, 11, 11), "America/New_York", "day")
    )
    assert _rows(rep, *FIELDS) == [
        # C1..C4 (18:50 to 19:30 local): SL C1 only of 3 counted; ASA (10+30)/2; AHT (960+330)/2;
        # FCR C1 of C1, C2; CSAT (5+2)/2, good 1 of 2
        ("2026-11-10", "all", 4, 3, 2, 0.3333, 20.0, 645.0, 1, 1, 0.3333, 1, 0.5, 0.5, 3.5, 0.5),
        ("2026-11-11", "all", 1, 1, 1, 1.0, 5.0, 120.0, 0, 0, 0.0, 0, 0.0, 0.0, None, None),
    ]


async def test_dst_end_day_has_25_hours(store, scripted):
    rep = await R.contact_report(
        store.db, R.Range(date(2026, 10, 31), date(2026, 11, 2), "America/New_York", "day")
    )
    assert _rows(rep, "interval", "contacts", "abandoned") == [("2026-11-01", 2, 2)]
    utc = await R.contact_report(store.db, R.Range(date(2026, 10, 31), date(2026, 11, 2), "UTC", "day"))
    assert _rows(utc, "interval", "contacts") == [("2026-11-01", 1), ("2026-11-02", 1)]
    # weeks (Monday): in New York both fall in the week of Oct 26 (Nov 1 is a Sunday); in UTC,
    # C7 (Monday Nov 2, 04:30) opens the next week
    ny = await R.contact_report(
        store.db, R.Range(date(2026, 10, 26), date(2026, 11, 8), "America/New_York", "week")
    )
    assert _rows(ny, "interval", "contacts") == [("2026-10-26", 2)]
    utc = await R.contact_report(store.db, R.Range(date(2026, 10, 26), date(2026, 11, 8), "UTC", "week"))
    assert _rows(utc, "interval", "contacts") == [("2026-10-26", 1), ("2026-11-02", 1)]


async def test_long_ranges_read_whole_utc_days_and_edges(store, scripted):
    """Totals and weeks read the per-day rollup for whole UTC days and the hourly one for the
    edges: New York's Nov 10-11 is UTC Nov 10 05:00 to Nov 12 05:00 (C1..C5, not C6, C7)."""
    rng = R.Range(date(2026, 11, 10), date(2026, 11, 11), "America/New_York", "day")
    plan = R._plan(rng, 3600, True, True)
    nov11 = int(T(11, 11, 0, 0).timestamp() // 86400)
    h = lambda t: int(t.timestamp()) // 3600  # noqa: E731
    assert plan.days == {0: [(nov11, nov11 + 1)], 86399: []}
    assert plan.fine == [(h(T(11, 10, 5, 0)), h(T(11, 11, 0, 0))), (h(T(11, 12, 0, 0)), h(T(11, 12, 5, 0)))]
    # per day: UTC Nov 11 is New York's Nov 10 until 05:00, then Nov 11: the day row counts for
    # Nov 11 (19 hours), and its first 5 hours (C2, C3, C4) move to Nov 10
    days = R._plan(rng, 3600, True, False)
    assert days.days == {0: [], 86399: [(nov11, nov11 + 1)]}
    assert days.moved == {0: [], 86399: [(h(T(11, 11, 0, 0)), h(T(11, 11, 5, 0)))]}
    assert days.fine == [(h(T(11, 10, 5, 0)), h(T(11, 11, 5, 0))), (h(T(11, 12, 0, 0)), h(T(11, 12, 5, 0)))]
    tot = await R.contact_report(store.db, rng, totals=True)
    assert _rows(tot, "contacts", "offered", "answered", "aht_s") == [(5, 4, 3, 470.0)]  # (960+330+120)/3
    wk = await R.contact_report(
        store.db, R.Range(date(2026, 11, 9), date(2026, 11, 15), "America/New_York", "week")
    )
    assert _rows(wk, "interval", "contacts", "offered", "answered") == [("2026-11-09", 5, 4, 3)]
    # with the day tables shifted by 0/6/12/18 h: New York (midnight at 05:00 UTC) reads days that
    # start at 06:00 UTC; from each, only the hour 05:00-06:00 belongs to the next local day
    shifted = R._plan(rng, 3600, True, False, R.SHIFTS)
    d10 = int(T(11, 10, 6, 0).timestamp() - 6 * 3600) // 86400
    assert shifted.shift == 6 * 3600 and shifted.days == {0: [(d10, d10 + 1)], 86399: []}
    assert shifted.moved == {0: [(h(T(11, 11, 5, 0)), h(T(11, 11, 6, 0)))], 86399: []}
    utc = R._plan(R.Range(date(2026, 11, 1), date(2026, 11, 30), "UTC", "day"), 3600, True, False)
    assert utc.fine == [] and len(utc.days[0]) == 1 and utc.moved == {0: [], 86399: []}  # whole UTC days only


async def test_quarter_hours_across_midnight_and_half_hour_zone(store, scripted):
    q = await R.contact_report(store.db, R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "15m"))
    assert _rows(q, "interval", "contacts", "answered", "short_abandoned") == [
        ("2026-11-10 23:45", 1, 1, 0),
        ("2026-11-11 00:00", 1, 1, 0),
        ("2026-11-11 00:15", 1, 0, 1),
        ("2026-11-11 00:30", 1, 0, 0),
        ("2026-11-11 05:00", 1, 1, 0),
    ]
    # Kolkata is UTC+5:30: 23:50 -> 05:20, 00:10 -> 05:40, 00:20 -> 05:50, 00:30 -> 06:00, 05:10 -> 10:40
    h = await R.contact_report(
        store.db, R.Range(date(2026, 11, 11), date(2026, 11, 11), "Asia/Kolkata", "hour")
    )
    assert _rows(h, "interval", "contacts") == [
        ("2026-11-11 05:00", 3),
        ("2026-11-11 06:00", 1),
        ("2026-11-11 10:00", 1),
    ]
    w = await R.contact_report(store.db, R.Range(date(2026, 11, 9), date(2026, 11, 15), "UTC", "week"))
    assert _rows(w, "interval", "contacts", "offered", "answered") == [("2026-11-09", 5, 4, 3)]


async def test_by_agent_team_tier_channel_disposition(store, scripted):
    rng = R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "day")
    tot = lambda by: R.contact_report(store.db, rng, by=by, totals=True)  # noqa: E731
    a1, a2 = str(scripted["a1"]), str(scripted["a2"])
    agents = _rows(await tot("agent"), "key", "contacts", "answered", "aht_s", "fcr_rate", "csat_avg")
    assert sorted(agents) == sorted(
        [
            ("(none)", 2, 0, None, None, None),
            (a1, 2, 2, 540.0, 0.5, 5.0),  # (960 + 120) / 2; FCR C1 of C1, C5
            (a2, 1, 1, 330.0, 0.0, 2.0),
        ]
    )
    teams = _rows(await tot("team"), "key", "contacts", "transfer_rate")
    assert teams == [("(none)", 2, None), ("north", 2, 0.0), ("south", 1, 1.0)]
    tiers = _rows(await tot("tier"), "key", "offered", "service_level", "asa_s", "csat_avg")
    # regular: C2, C3 (short: not counted), C4 -> offered 2, SL 0/2, ASA 30; vip: C1, C5 -> SL 2/2
    assert tiers == [("regular", 2, 0.0, 30.0, 2.0), ("vip", 2, 1.0, 7.5, 5.0)]
    ch = _rows(await tot("channel"), "key", "contacts")
    assert ch == [("chat", 1), ("voice", 4)]
    dis = _rows(await tot("disposition"), "key", "contacts")
    assert dis == [("(none)", 2), ("follow_up", 1), ("resolved", 2)]
    q = _rows(await tot("queue"), "key", "contacts", "abandon_rate")
    assert q == [("billing", 4, 0.3333), ("support", 1, 0.0)]  # billing: C4 of C1, C2, C4 (C3 short)
    tier_srv = await R.tier_service(store.db, rng)
    assert _rows(tier_srv, "tier", "asa_s", "service_level") == [("regular", 30.0, 0.0), ("vip", 7.5, 1.0)]


async def test_scope_keeps_a_supervisor_to_their_teams(store, scripted):
    rng = R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "day")
    north = await R.contact_report(store.db, rng, totals=True, scope=R.Scope(teams=frozenset({"north"})))
    assert _rows(north, "contacts") == [(2,)]
    billing = await R.contact_report(store.db, rng, totals=True, scope=R.Scope(queues=frozenset({"billing"})))
    assert _rows(billing, "contacts") == [(4,)]
    nothing = await R.contact_report(store.db, rng, totals=True, scope=R.Scope())
    assert nothing["rows"] == []


async def test_agent_time_occupancy_and_not_ready_across_midnight(store, scripted):
    a1 = scripted["a1"]
    await R.add_agent_time(store.db, a1, "north", "not_ready", "lunch", T(11, 10, 23, 50), T(11, 11, 0, 20))
    await R.add_agent_time(store.db, a1, "north", "ready", None, T(11, 11, 0, 20), T(11, 11, 0, 30))
    await R.add_agent_time(store.db, a1, "north", "busy", None, T(11, 11, 0, 30), T(11, 11, 0, 40))
    await R.add_agent_time(store.db, a1, "north", "wrap_up", None, T(11, 11, 0, 40), T(11, 11, 0, 45))
    rng = R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "day")
    occ = await R.agent_report(store.db, rng)
    assert _rows(occ, "interval", "ready_s", "busy_s", "wrap_up_s", "not_ready_s", "occupancy") == [
        ("2026-11-10", 0.0, 0.0, 0.0, 600.0, None),  # 23:50 -> midnight
        ("2026-11-11", 600.0, 600.0, 300.0, 1200.0, 0.6),  # (600 + 300) / (600 + 600 + 300)
    ]
    nr = await R.not_ready_report(store.db, rng)
    assert _rows(nr, "reason", "seconds") == [("lunch", 1800.0)]
    assert R.split_slots(T(11, 10, 23, 50), T(11, 11, 0, 20)) == [
        (int(T(11, 10, 23, 45).timestamp() // 900), 600.0),
        (int(T(11, 11, 0, 0).timestamp() // 900), 900.0),
        (int(T(11, 11, 0, 15).timestamp() // 900), 300.0),
    ]


async def test_tickets_risk_and_customer_movement(store, scripted):
    db, vip, reg = store.db, scripted["vip"], scripted["reg"]
    c1 = await store.create_ticket(reg, "complaint", "Billing complaint")
    c2 = await store.create_ticket(reg, "complaint", "Again")
    sr = await store.create_ticket(vip, "service_request", "Change of plan")
    ts = lambda t: t.replace(tzinfo=None).isoformat(sep=" ") if db.is_sqlite else t  # noqa: E731
    async with db.engine.begin() as conn:
        upd = (
            "UPDATE tickets SET created_at = :c, sla_due_at = :d, solved_at = :s, status = :st, "
            "escalation_queue = :e WHERE id = :id"
        )
        # c1: 4 h to solve, within its SLA; c2: 10 h, 2 h past its SLA, escalated; sr: open past due
        await conn.execute(
            text(upd),
            {
                "c": ts(T(11, 10, 10, 0)),
                "d": ts(T(11, 10, 18, 0)),
                "s": ts(T(11, 10, 14, 0)),
                "st": "solved",
                "e": None,
                "id": c1.id,
            },
        )
        await conn.execute(
            text(upd),
            {
                "c": ts(T(11, 10, 8, 0)),
                "d": ts(T(11, 10, 16, 0)),
                "s": ts(T(11, 10, 18, 0)),
                "st": "solved",
                "e": "vip",
                "id": c2.id,
            },
        )
        await conn.execute(
            text(upd),
            {
                "c": ts(T(11, 11, 9, 0)),
                "d": ts(T(11, 11, 12, 0)),
                "s": None,
                "st": "open",
                "e": None,
                "id": sr.id,
            },
        )
    now = T(11, 12, 0, 0)
    rep = await R.ticket_report(db, R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "day"), now)
    assert _rows(rep, "type", "opened", "resolved", "resolution_h", "sla_breaches", "escalations") == [
        ("complaint", 2, 2, 7.0, 1, 1),
        ("service_request", 1, 0, None, 1, 0),
    ]

    risk = await R.customers_at_risk(db, now)
    # reg: 2 complaints in 90 days, 3 contacts in 7 days (C2, C3, C4); one CSAT only (not enough)
    assert _rows(risk, "customer_id", "reasons", "complaints", "recent_contacts", "phone") == [
        (reg, "repeated_complaints repeated_contacts", 2, 3, "+12025550102")
    ]

    assert await R.snapshot_customers(db, T(11, 10, 1, 0)) == 0  # the first snapshot: nobody moved
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE customers SET tier = 'regular' WHERE id = :id"), {"id": vip})
        await conn.execute(
            text("UPDATE customers SET loyalty = 'lost', tier = 'key' WHERE id = :id"), {"id": reg}
        )
    assert await R.snapshot_customers(db, T(11, 11, 1, 0)) == 2
    mv = await R.customer_movement(db, R.Range(date(2026, 11, 10), date(2026, 11, 11), "UTC", "day"))
    assert _rows(mv, "day", "tier", "moved_up", "moved_down", "lost") == [
        ("2026-11-11", "key", 1, 0, 1),
        ("2026-11-11", "regular", 0, 1, 0),
    ]
    dist = await R.customer_distribution(db)
    assert sum(r["customers"] for r in dist["rows"]) == 2
    assert {(r["tier"], r["loyalty"]) for r in dist["rows"]} >= {("key", "lost")}


async def test_outbound_contacts_are_not_offered(store, scripted):
    """A callback (outbound, opened queued) that fails counts as a contact, not as offered or abandoned."""
    i = await store.open_interaction(
        "voice", "outbound", scripted["reg"], queue="billing", state="queued", at=T(11, 11, 9, 0)
    )
    await store.set_state(i.id, "failed", at=T(11, 11, 9, 1))
    rep = await R.contact_report(store.db, R.Range(date(2026, 11, 11), date(2026, 11, 11), "UTC", "day"))
    assert _rows(rep, "contacts", "offered", "abandoned", "service_level") == [(5, 3, 1, 0.3333)]
    assert await R.snapshot_customers(store.db, T(11, 11, 10, 0), once=True) == 0
    async with store.db.engine.connect() as conn:
        n = (await conn.execute(text("SELECT count(*) FROM report_customer_counts"))).scalar_one()
    assert await R.snapshot_customers(store.db, T(11, 11, 11, 0), once=True) == 0  # taken already today
    async with store.db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM report_customer_counts"))).scalar_one() == n


async def test_a_failing_rollup_never_stops_the_interaction(store, scripted, caplog):
    async with store.db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE report_contacts_day RENAME TO report_contacts_day_gone"))
    i = await store.open_interaction("voice", "inbound", scripted["reg"], queue="billing", at=T(11, 12, 9, 0))
    await store.set_state(i.id, "queued", at=T(11, 12, 9, 0))
    done = await store.set_state(i.id, "abandoned", at=T(11, 12, 9, 1))
    assert done.state == "abandoned" and (await store.get_interaction(i.id)).state == "abandoned"
    assert await R.fold_pending(store.db) == 0  # the fold fails: logged, nothing lost (still queued)
    assert "report rollups failed" in caplog.text
    async with store.db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE report_contacts_day_gone RENAME TO report_contacts_day"))
    rng = R.Range(date(2026, 11, 12), date(2026, 11, 12), "UTC", "day")
    assert _rows(await R.contact_report(store.db, rng), "contacts", "abandoned") == [(1, 1)]
    assert (await R.rebuild(store.db))["interactions"] == 8  # the backfill counts it once
    assert _rows(await R.contact_report(store.db, rng), "contacts", "abandoned") == [(1, 1)]


def test_csv_matches_the_rows() -> None:
    rep = {
        "columns": ["interval", "asa_s", "csat_avg"],
        "rows": [{"interval": "2026-11-10", "asa_s": 10.0, "csat_avg": None}],
    }
    assert R.to_csv(rep) == "interval,asa_s,csat_avg\r\n2026-11-10,10,\r\n"  # as the page shows it


def test_bad_parameters_are_refused() -> None:
    for rng in (
        R.Range(date(2026, 1, 2), date(2026, 1, 1)),
        R.Range(date(2026, 1, 1), date(2026, 1, 1), "Mars/Base"),
        R.Range(date(2026, 1, 1), date(2026, 1, 1), "UTC", "minute"),
    ):
        with pytest.raises(R.ReportError):
            rng.check()
