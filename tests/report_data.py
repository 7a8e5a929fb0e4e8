"""The scripted report data set (issue 16) that tests/crm_core/test_reports.py checks by hand and
tests/callcenter/test_reports_api.py serves over HTTP; see the former's docstring for C1..C7."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def T(month: int, day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, month, day, hh, mm, ss, tzinfo=UTC)


async def contact(
    store,
    *,
    cust,
    at,
    wait,
    talk=None,
    wrap=None,
    agent=None,
    dispo=None,
    channel="voice",
    queue="billing",
    transfers=0,
    abandon=False,
    csat=None,
    dispo_after=False,
):
    i = await store.open_interaction(channel, "inbound", cust, queue=queue, at=at)
    await store.set_state(i.id, "queued", at=at)
    if abandon:
        await store.set_state(i.id, "abandoned", at=at + timedelta(seconds=wait))
        return i.id
    ans = at + timedelta(seconds=wait)
    await store.set_state(i.id, "answered", at=ans, agent_id=agent)
    for _ in range(transfers):
        await store.append_event(i.id, "transfer", data={"target": "x"}, at=ans)
    end = ans + timedelta(seconds=talk)
    await store.set_state(i.id, "ended", at=end)
    if dispo and not dispo_after:
        await store.set_disposition(i.id, dispo, agent_id=agent, at=end)
    await store.set_state(i.id, "wrapup_done", at=end + timedelta(seconds=wrap))
    if dispo and dispo_after:
        await store.set_disposition(i.id, dispo, agent_id=agent, at=end)
    if csat is not None:
        await store.record_survey(csat, interaction_id=i.id, at=end + timedelta(seconds=wrap + 5))
    return i.id


async def add_agents(store) -> dict[str, Any]:
    """Teams north and south, agents a1 (north) and a2 (south)."""
    await store.create_team("north")
    await store.create_team("south")
    a1 = await store.create_user("a1", "agent-password-1", team="north")
    a2 = await store.create_user("a2", "agent-password-2", team="south")
    return {"a1": a1.id, "a2": a2.id}


async def add_contacts(store, ids: dict[str, Any], *, dst: bool = True) -> dict[str, Any]:
    """Customers vip and reg, contacts C1..C5, and with `dst` C6, C7; returns ids with vip, reg."""
    vip = await store.create_customer("Vera Vip", tier_override="vip", phones=["+12025550101"])
    reg = await store.create_customer("Rob Regular", phones=["+12025550102"])
    a1, a2 = ids["a1"], ids["a2"]
    await contact(
        store,
        cust=vip.id,
        at=T(11, 10, 23, 50),
        wait=10,
        talk=900,
        wrap=60,
        agent=a1,
        dispo="resolved",
        dispo_after=True,
        csat=5,
    )
    await contact(
        store,
        cust=reg.id,
        at=T(11, 11, 0, 10),
        wait=30,
        talk=300,
        wrap=30,
        agent=a2,
        dispo="follow_up",
        transfers=2,
        csat=2,
    )
    await contact(store, cust=reg.id, at=T(11, 11, 0, 20), wait=3, abandon=True)
    await contact(store, cust=reg.id, at=T(11, 11, 0, 30), wait=60, abandon=True)
    await contact(
        store,
        cust=vip.id,
        at=T(11, 11, 5, 10),
        wait=5,
        talk=100,
        wrap=20,
        agent=a1,
        dispo="resolved",
        channel="chat",
        queue="support",
    )
    if dst:
        await contact(store, cust=None, at=T(11, 1, 4, 30), wait=10, abandon=True, queue="general")
        await contact(store, cust=None, at=T(11, 2, 4, 30), wait=10, abandon=True, queue="general")
    return {**ids, "vip": vip.id, "reg": reg.id}


FIELDS = (
    "interval",
    "key",
    "contacts",
    "offered",
    "answered",
    "service_level",
    "asa_s",
    "aht_s",
    "abandoned",
    "short_abandoned",
    "abandon_rate",
    "transferred",
    "transfer_rate",
    "fcr_rate",
    "csat_avg",
    "csat_pct",
)

# by UTC day: Nov 10 holds C1 only (it ends after midnight but arrived before)
UTC_DAYS = [
    # C1: SL 1/1, ASA 10, AHT 900+60, FCR 1/1, CSAT 5
    ("2026-11-10", "all", 1, 1, 1, 1.0, 10.0, 960.0, 0, 0, 0.0, 0, 0.0, 1.0, 5.0, 1.0),
    # C2..C5: offered 4 queued - 1 short = 3; answered C2, C5; in SL only C5 -> 1/3;
    # ASA (30 + 5) / 2; AHT (330 + 120) / 2; abandoned C4 only -> 1/3; transfers 1 (C2, once) / 2;
    # FCR: C2 follow_up, C5 a repeat -> 0 / 2; CSAT C2's 2 (not good)
    ("2026-11-11", "all", 4, 3, 2, 0.3333, 17.5, 225.0, 1, 1, 0.3333, 1, 0.5, 0.0, 2.0, 0.0),
]
