"""Automatic SLA escalation (issue 10): tickets close to breaching their SLA are escalated to
their escalation queue, the escalation is logged on the ticket, and supervisors are alerted:
connected supervisors' consoles get an `alert` at once, one who connects later gets the stored
alert until someone acknowledges it. Over the real console websocket (frames schema-checked),
SQLite and PostgreSQL; the UTC clock is injected."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from crm_core.callbacks import CallbackStore
from routing import AlertSupervisor
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(90)
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
ENV = {"CC_SLA__POLL_S": "0", "CC_CALLBACKS__POLL_S": "0", "CC_CHAT__DEMO_SITE_PORT": "",
       "CC_SLA__QUEUE_BY_TYPE__COMPLAINT": "complaints"}


async def _console(rc, username: str):
    ws, c = await open_console(rc.base, await cookie_for(rc.base, username))
    await c.next("hello")
    return ws, c


async def _flush(c) -> None:
    """Everything the server sent this console before now has been read (a request's reply)."""
    await c.send("search", q="anything", request_id="flush")
    await c.next("search_results", request_id="flush")


async def test_tickets_near_their_sla_are_escalated_and_supervisors_alerted(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    for name in ("super", "boss"):
        await store.create_user(name, "agent-password", roles=["supervisor"], display_name=name.title())
    vip, reg = people["vip"].id, people["regular"].id
    for seeded in await store.list_tickets(vip):  # created at the real time: out of the way
        await store.update_ticket_status(seeded.id, "closed")
    request = await store.create_ticket(vip, "service_request", "New line", at=T0)  # VIP: 4 h
    complaint = await store.create_ticket(reg, "complaint", "Rude agent", at=T0)  # regular: 8 h
    routed = await store.create_ticket(reg, "inquiry", "Roaming", at=T0, escalation_queue="billing")  # 48 h
    now = {"t": T0}
    async with running_center(database, **ENV) as rc:
        sla = rc.center.sla
        sla.utc = lambda: now["t"]
        ws_s, sup = await _console(rc, "super")
        ws_a, agent = await _console(rc, "agent1")

        now["t"] = T0 + timedelta(hours=3)  # the VIP request is at 75 %
        assert await sla.check() == []
        now["t"] = T0 + timedelta(hours=3, minutes=12)  # 80 %
        got = await sla.check()
        assert [e.number for e in got] == [request.number]
        alert = await sup.next("alert")
        assert alert["kind"] == "sla_escalation" and alert["ticket"] == request.number
        assert alert["queue"] == "supervisors" and "80 %" in alert["message"]
        assert alert["at"] == now["t"].isoformat()
        await _flush(agent)
        assert not [m for m in agent.seen if m["type"] == "alert"]  # agents are not alerted

        t = await store.get_ticket(request.id)
        assert (t.escalation_queue, t.priority) == ("supervisors", "high")
        events = await CallbackStore(database).ticket_events(request.id)
        assert [(k, d["queue"], d["fraction"], d["breached"]) for k, _at, d in events] == [
            ("sla_escalated", "supervisors", 0.8, False)]
        assert events[0][1] == now["t"]
        assert await sla.check() == []  # once only

        # Later: the complaint goes to the queue for its type; the inquiry keeps its own queue.
        now["t"] = T0 + timedelta(hours=47)
        got = {e.number: e for e in await sla.check()}
        assert set(got) == {complaint.number, routed.number}
        assert got[complaint.number].queue == "complaints" and got[complaint.number].breached
        assert got[routed.number].queue == "billing" and not got[routed.number].breached
        seen = {(await sup.next("alert"))["ticket"] for _ in range(2)}
        assert seen == {complaint.number, routed.number}

        # A supervisor who connects later sees the stored alerts, oldest first, and acknowledges one.
        ws_b, boss = await _console(rc, "boss")
        stored = [await boss.next("alert") for _ in range(3)]
        assert [a["ticket"] for a in stored][0] == request.number
        assert stored[0]["alert_id"] == alert["alert_id"]
        await boss.send("ack_alert", alert_id=alert["alert_id"])
        for console in (boss, sup):  # stored, then every connected supervisor is told
            assert (await console.next("alert_cleared", alert_id=alert["alert_id"]))["by"] == "boss"
        await agent.send("ack_alert", alert_id=alert["alert_id"], request_id="no")
        assert (await agent.next("error", request_id="no"))["code"] == "forbidden"
        await boss.send("ack_alert", alert_id=999999, request_id="nf")
        assert (await boss.next("error", request_id="nf"))["code"] == "not_found"
        ws_c, again = await _console(rc, "super")
        await _flush(again)
        assert sorted(a["ticket"] for a in again.seen if a["type"] == "alert") == sorted(
            [complaint.number, routed.number])
        for w in (ws_s, ws_a, ws_b, ws_c):
            await w.close()
    stored_alerts = await CallbackStore(database).open_alerts()
    assert {a.ticket_id for a in stored_alerts} == {complaint.id, routed.id}


async def test_solved_tickets_and_tickets_without_sla_are_left_alone(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    solved = await store.create_ticket(people["vip"].id, "complaint", "Fixed already", at=T0)
    await store.update_ticket_status(solved.id, "solved")
    async with running_center(database, **ENV) as rc:
        rc.center.sla.utc = lambda: datetime.now(UTC) + timedelta(days=30)
        got = await rc.center.sla.check()
        assert solved.number not in {e.number for e in got}
        assert got  # the seeded open VIP request is long past its SLA thirty days on
    assert await CallbackStore(database).ticket_events(solved.id) == []


async def test_routing_escalation_alert_reaches_supervisors(database):
    store = _store(database)
    await seed_people(store, agents=1)
    await store.create_user("super", "agent-password", roles=["supervisor"], display_name="Sue")
    async with running_center(database, **ENV) as rc:
        queues = rc.center.runner.engine.config.queues
        queues["general"] = dataclasses.replace(
            queues["general"], escalation=(AlertSupervisor(0.3, "general: a caller waits"),))
        ws, sup = await _console(rc, "super")
        call = rc.sim.call("+14155550199", digits=["1", "0"])  # nobody is ready: it waits
        alert = await sup.next("alert", timeout=20)
        assert (alert["kind"], alert["queue"], alert["ticket"]) == ("routing", "general", None)
        assert alert["message"] == "general: a caller waits"
        call.hangup()
        await call.wait_hangup()
        await ws.close()
    stored = await CallbackStore(database).open_alerts()
    assert [(a.kind, a.queue) for a in stored] == [("routing", "general")]
