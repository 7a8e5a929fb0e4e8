"""Issue 14 leftovers: SLA/routing alerts reach only the supervisors of the queue's teams (and
admins), and only they may acknowledge them; an admin's change to a signed-in agent's skills and
capacities is in effect at once (or as soon as their contact ends), without signing them out."""
from __future__ import annotations

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.facade import MessageRefused, WebUser
from callcenter.services.routing_runner import RoutingRunner
from callcenter.settings import load_settings
from routing import (
    AgentPresence,
    AgentProfile,
    Channel,
    Contact,
    ContactArrived,
    ContactHungUp,
    Engine,
    EngineConfig,
    Offer,
    OfferDeclined,
    Presence,
    QueueConfig,
)
from tests.callcenter.voice_harness import Console, running_center

pytestmark = pytest.mark.timeout(120)


async def _console(rc, username: str, teams: tuple[str, ...]) -> Console:
    u = await rc.store.get_user(username)
    user = WebUser(u.id, u.username, u.display_name, tuple(u.roles), teams, u.extension)
    return Console(rc.center, user, await rc.center.connect_console(user))


def _alerts(console: Console) -> list[dict]:
    out = []
    while not console.link.queue.empty():
        msg = console.link.queue.get_nowait()
        console.seen.append(msg)
        if msg["type"] in ("alert", "alert_cleared"):
            out.append(msg)
    return out


async def test_alerts_go_to_the_queue_teams_supervisors_only(database) -> None:
    store = build_store(load_settings(env={}), database)
    for team in ("red", "blue"):
        await store.create_team(team)
    await store.create_user("sue", "pw-123456789", roles=["supervisor"], display_name="Sue", team="red")
    await store.create_user("bob", "pw-123456789", roles=["supervisor"], display_name="Bob", team="blue")
    await store.create_user("ada", "pw-123456789", roles=["admin"], display_name="Ada")
    await store.upsert_queue("billing", teams=["red"])
    await store.upsert_queue("support", teams=["blue"])
    async with running_center(database, CC_SLA__POLL_S="0") as rc:
        sla = rc.center.sla
        sue, bob, ada = (await _console(rc, "sue", ("red",)), await _console(rc, "bob", ("blue",)),
                         await _console(rc, "ada", ()))
        for c in (sue, bob, ada):
            _alerts(c)
        red = await sla.store.add_alert("routing", "billing: a caller waits", queue="billing")
        await sla.broadcast(red)
        anyone = await sla.store.add_alert("routing", "general: a caller waits", queue="general")
        await sla.broadcast(anyone)  # no team owns "general": every supervisor
        got = {c.user.username: [a["alert_id"] for a in await _wait_alerts(c, n)]
               for c, n in ((sue, 2), (ada, 2), (bob, 1))}
        assert got == {"sue": [red.id, anyone.id], "ada": [red.id, anyone.id], "bob": [anyone.id]}
        # another team's supervisor may not acknowledge it, and learns nothing about it
        with pytest.raises(MessageRefused) as refused:
            await bob.send("ack_alert", alert_id=red.id)
        assert refused.value.code == "not_found" and "billing" not in str(refused.value)
        with pytest.raises(MessageRefused) as unknown:
            await bob.send("ack_alert", alert_id=999999)
        assert (unknown.value.code, str(unknown.value)) == (refused.value.code, str(refused.value))
        assert (await sla.store.alert(red.id)).acknowledged_at is None
        await sue.send("ack_alert", alert_id=red.id)
        for c in (sue, ada):
            assert await c.next("alert_cleared", alert_id=red.id)
        assert not [a for a in _alerts(bob) if a.get("alert_id") == red.id]
        # a console opened later gets only the open alerts in its scope
        await sla.broadcast(await sla.store.add_alert("sla_escalation", "blue ticket", queue="support"))
        later = await _console(rc, "sue", ("red",))
        ids = [a["alert_id"] for a in await _wait_alerts(later, 1)]
        assert ids == [anyone.id]


async def _wait_alerts(console: Console, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        out.append(await console.next("alert"))
    return out


def _runner() -> tuple[RoutingRunner, list]:
    cfg = EngineConfig(queues={"fr": QueueConfig("fr", skills={"french": 3})})
    performed: list = []

    async def perform(decisions) -> None:
        performed.extend(decisions)

    clock = iter(range(1, 10_000)).__next__
    return RoutingRunner(Engine(cfg), perform, clock=lambda: float(clock()), autotick=False), performed


async def test_a_changed_profile_applies_while_signed_in() -> None:
    runner, performed = _runner()
    await runner.add_agent(AgentProfile("7", {"english": 5}))
    await runner.handle(AgentPresence("7", Presence.READY))
    await runner.handle(ContactArrived(Contact("c1", Channel.VOICE, "fr", 1.0)))
    assert not [d for d in performed if isinstance(d, Offer)]  # nobody speaks French yet
    assert await runner.replace_agent(AgentProfile("7", {"english": 5, "french": 4}))
    assert [(d.contact_id, d.agent_id) for d in performed if isinstance(d, Offer)] == [("c1", "7")]
    rec = runner.engine.store.agent("7")
    assert rec.presence is Presence.READY and rec.profile.skills["french"] == 4
    # holding a contact: the change waits until the contact is gone, then applies by itself
    assert not await runner.replace_agent(AgentProfile("7", {"french": 4}, capacity={Channel.CHAT: 5}))
    assert runner.engine.store.agent("7").profile.skills == {"english": 5, "french": 4}
    await runner.handle(OfferDeclined("c1", "7"))
    await runner.handle(ContactHungUp("c1"))
    rec = runner.engine.store.agent("7")
    assert rec.profile.skills == {"french": 4} and rec.profile.capacity[Channel.CHAT] == 5
    assert not runner.pending_profiles


async def test_admin_changes_a_signed_in_agents_skills_through_the_api(database) -> None:
    store = build_store(load_settings(env={}), database)
    ada = await store.create_user("ada", "pw-123456789", roles=["admin"], display_name="Ada")
    ann = await store.create_user("ann", "pw-123456789", roles=["agent"], display_name="Ann",
                                  skills={"general": 3})
    _t, token = await store.create_api_token(ada.id, "t", "admin")
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        console = await Console.open(rc.center, rc.store, "ann")
        await console.send("set_state", state="ready")
        assert rc.center.engine.store.agent(str(ann.id)).presence is Presence.READY
        r = await http.patch(f"{rc.base}/api/v1/users/{ann.id}", headers={"Authorization": f"Bearer {token}"},
                             json={"skills": {"general": 3, "french": 5}, "capacities": {"chat": 4}})
        assert r.status == 200, await r.text()
        rec = rc.center.engine.store.agent(str(ann.id))
        assert rec.presence is Presence.READY  # still signed in and ready
        assert rec.profile.skills == {"general": 3, "french": 5}
        assert rec.profile.capacity[Channel.CHAT] == 4
