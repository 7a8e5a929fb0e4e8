"""Supervisors' interventions over the real console websocket (issue 15): listen / whisper /
barge through AMI Originate into ChanSpy on the simulated PBX (AMI over real TCP), force state,
log out, move and raise waiting contacts; each refused for another team's supervisor, each in
the audit log (and on the interaction's timeline when it is about a contact)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcenter.asterisk.ami_client import AMIClient
from callcenter.demo import AMI_SECRET
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(120)
# the simulated PBX at half speed: an agent's phone rings 10 s, not 0.4 s, on a loaded machine
SLOW_PBX = {"CC_DEMO__TIME_SCALE": "0.5", "CC_VOICE__ACK_TIMEOUT_S": "20"}


async def seed_teams(store: Any) -> None:
    """agent1 in team red, agent2 in team blue; sup_red (ext 2001), sup_blue (ext 2002)."""
    await seed_people(store, agents=2)
    for team in ("red", "blue"):
        await store.create_team(team)
    await store.add_team_member("red", (await store.get_user("agent1")).id)
    await store.add_team_member("blue", (await store.get_user("agent2")).id)
    await store.create_user("sup_red", "agent-password", roles=["supervisor"], display_name="Sam Red",
                            team="red", extension="2001")
    await store.create_user("sup_blue", "agent-password", roles=["supervisor"], display_name="Bo Blue",
                            team="blue", extension="2002")


async def seen_or_next(c: Any, type_: str, **match: Any) -> dict[str, Any]:
    """A message already read past (the reply and the pushed messages race), or the next one."""
    for m in c.seen:
        if m["type"] == type_ and all(m.get(k) == v for k, v in match.items()):
            c.seen.remove(m)
            return m  # type: ignore[no-any-return]
    msg: dict[str, Any] = await c.next(type_, **match)
    c.seen.remove(msg)
    return msg


async def audit_of(store: Any, actor: str) -> list[Any]:
    return [a for a in await store.list_audit(limit=1000) if a.actor == actor]


async def talking(rc: Any, c: Any, phone: str = VIP_PHONE) -> tuple[Any, int]:
    await c.send("set_state", state="ready")
    await c.next("agent_state", state="ready")
    call = rc.sim.call(phone, digits=["1"])
    offer = await c.next("offer")
    await c.send("ack_offer", offer_id=offer["offer_id"])
    await c.next("contact_state", state="ringing")
    await c.send("answer", interaction_id=offer["interaction_id"])
    await c.next("contact_state", state="talking")
    return call, offer["interaction_id"]


async def ami_watch(rc: Any) -> tuple[AMIClient, asyncio.Queue[Any]]:
    """Our own AMI session to the simulator over TCP: what Asterisk would tell anyone."""
    client = AMIClient("127.0.0.1", rc.sim.ami_port, "cc", AMI_SECRET, ping_interval=None, reconnect=False)
    await client.start()
    q: asyncio.Queue[Any] = asyncio.Queue()
    client.subscribe(None, callback=q.put_nowait)
    return client, q


async def ami_event(q: asyncio.Queue[Any], name: str, **match: str) -> Any:
    async def find() -> Any:
        while True:
            ev = await q.get()
            if getattr(ev, "name", None) == name and all(ev.get(k) == v for k, v in match.items()):
                return ev
    return await asyncio.wait_for(find(), 20)


async def test_barge_then_whisper_then_listen_on_a_live_call(database):
    store = _store(database)
    await seed_teams(store)
    async with running_center(database, **SLOW_PBX) as rc:
        ws, agent = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await talking(rc, agent)
        agent_channel = rc.center.voice.calls[iid].agent_channel
        client, ami = await ami_watch(rc)

        wsb, blue = await open_console(rc.base, await cookie_for(rc.base, "sup_blue"))
        await seen_or_next(blue, "hello")
        await blue.send("spy", interaction_id=iid, mode="listen", request_id="b1")
        assert (await seen_or_next(blue, "error", request_id="b1"))["code"] == "forbidden"
        wsa, agent_only = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        await agent_only.send("spy", interaction_id=iid, mode="listen", request_id="a1")
        assert (await seen_or_next(agent_only, "error", request_id="a1"))["code"] == "forbidden"  # role

        wss, sup = await open_console(rc.base, await cookie_for(rc.base, "sup_red"))
        await seen_or_next(sup, "hello")
        await sup.send("spy", interaction_id=iid, mode="barge", request_id="s1")
        done = await seen_or_next(sup, "intervention_done", request_id="s1")
        assert (done["action"], done["mode"]) == ("spy", "barge")
        await seen_or_next(sup, "spy_state", state="dialing", mode="barge")

        # The PBX calls the supervisor's phone into ChanSpy with the barge option (over TCP)
        sup_id = (await store.get_user("sup_red")).id
        resp = await ami_event(ami, "OriginateResponse", ActionID=f"cc-spy-{iid}-{sup_id}")
        assert resp["Response"] == "Success" and resp["Application"] == "ChanSpy"
        assert resp["Data"] == f"{agent_channel},qEdB"
        assert resp["Channel"].startswith("PJSIP/2001-")
        start = await ami_event(ami, "ChanSpyStart")
        assert start["SpyeeChannel"] == agent_channel and start["SpyerChannel"] == resp["Channel"]
        await seen_or_next(sup, "spy_state", state="active", mode="barge")
        spyer = rc.sim.pbx.find_channel(resp["Channel"])
        assert spyer is not None and spyer.spying is not None and spyer.spying[1] == "barge"

        # switch to whisper, then listen: DTMF 5 and 4 received on the spying channel (option d)
        await sup.send("spy", interaction_id=iid, mode="whisper", request_id="s2")
        await seen_or_next(sup, "intervention_done", request_id="s2", mode="whisper")
        dtmf = await ami_event(ami, "DTMFEnd", Channel=resp["Channel"])
        assert (dtmf["Digit"], dtmf["Direction"]) == ("5", "Received")
        await seen_or_next(sup, "spy_state", state="active", mode="whisper")
        assert spyer.spying[1] == "whisper"
        await sup.send("spy", interaction_id=iid, mode="listen", request_id="s3")
        await seen_or_next(sup, "spy_state", state="active", mode="listen")
        assert spyer.spying[1] == "listen"

        # the call ends: ChanSpy stops with it (option E) and the console hears so
        call.hangup()
        await ami_event(ami, "ChanSpyStop", SpyerChannel=resp["Channel"])
        await seen_or_next(sup, "spy_state", state="ended")
        await seen_or_next(agent, "contact_state", state="ended")
        for w in (ws, wsb, wsa, wss):
            await w.close()
        await client.close()
    events = [e for e in await store.timeline(iid) if e.kind == "supervisor"]
    assert [(e.data["action"], e.data.get("mode")) for e in events] == [
        ("spy", "barge"), ("spy_mode", "whisper"), ("spy_mode", "listen")]
    assert all(e.data["by"] == "sup_red" for e in events)
    audit = [a.action for a in await audit_of(store, "sup_red")]
    assert audit.count("supervisor.spy") == 1 and audit.count("supervisor.spy_mode") == 2


async def test_spy_stop_hangs_up_the_supervisors_phone(database):
    store = _store(database)
    await seed_teams(store)
    async with running_center(database, **SLOW_PBX) as rc:
        ws, agent = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        call, iid = await talking(rc, agent)
        wss, sup = await open_console(rc.base, await cookie_for(rc.base, "sup_red"))
        await sup.send("spy_stop", interaction_id=iid, request_id="x")
        assert (await seen_or_next(sup, "error", request_id="x"))["code"] == "not_found"
        await sup.send("spy", interaction_id=iid, mode="listen")
        await seen_or_next(sup, "spy_state", state="active", mode="listen")
        await sup.send("spy_stop", interaction_id=iid, request_id="stop")
        await seen_or_next(sup, "intervention_done", request_id="stop")
        await seen_or_next(sup, "spy_state", state="ended")
        assert rc.center.voice.calls[iid].state == "talking"  # the call goes on
        call.hangup()
        await seen_or_next(agent, "contact_state", state="ended")
        await ws.close()
        await wss.close()


async def test_force_state_and_logout_are_team_scoped_and_audited(database):
    store = _store(database)
    await seed_teams(store)
    async with running_center(database, **SLOW_PBX) as rc:
        cookie1 = await cookie_for(rc.base, "agent1")
        ws1, a1 = await open_console(rc.base, cookie1)
        await seen_or_next(a1, "agent_state", state="offline")
        wsr, red = await open_console(rc.base, await cookie_for(rc.base, "sup_red"))
        wsb, blue = await open_console(rc.base, await cookie_for(rc.base, "sup_blue"))
        await blue.send("force_state", agent="agent1", state="ready", request_id="b")
        assert (await seen_or_next(blue, "error", request_id="b"))["code"] == "forbidden"
        await red.send("force_state", agent="agent1", state="ready", request_id="r1")
        await seen_or_next(red, "intervention_done", request_id="r1", state="ready")
        await seen_or_next(a1, "agent_state", state="ready")
        assert (await seen_or_next(a1, "supervisor_notice"))["text"] == "Sam Red set you ready."
        await red.send("force_state", agent="agent1", state="not_ready", reason="meeting", note="team huddle",
                       request_id="r2")
        await seen_or_next(red, "intervention_done", request_id="r2")
        st = await seen_or_next(a1, "agent_state", state="not_ready")
        assert st["reason"] == "meeting"
        notice = await seen_or_next(a1, "supervisor_notice", action="force_state")
        assert "Sam Red" in notice["text"] and "team huddle" in notice["text"]
        await red.send("force_state", agent="agent1", state="not_ready", reason="nope", request_id="r3")
        assert (await seen_or_next(red, "error", request_id="r3"))["code"] == "invalid"
        await red.send("force_state", agent="nobody", state="ready", request_id="r4")
        assert (await seen_or_next(red, "error", request_id="r4"))["code"] == "not_found"

        await blue.send("force_logout", agent="agent1", request_id="b2")
        assert (await seen_or_next(blue, "error", request_id="b2"))["code"] == "forbidden"
        await red.send("force_logout", agent="agent1", note="end of shift", request_id="r5")
        await seen_or_next(red, "intervention_done", request_id="r5", state="offline")
        await seen_or_next(a1, "agent_state", state="offline")
        await seen_or_next(a1, "supervisor_notice", action="force_logout")
        # the agent's web session is over (their console closes with 4401 at its next check)
        token = cookie1.split("cc_session=", 1)[1].split(";", 1)[0]
        assert await rc.center.session(token) is None
        await ws1.close()
        for w in (wsr, wsb):
            await w.close()
    audit = await audit_of(store, "sup_red")
    actions = [a.action for a in audit]
    assert actions.count("supervisor.force_state") == 2 and actions.count("supervisor.force_logout") == 1
    assert not [a for a in await audit_of(store, "sup_blue") if a.action.startswith("supervisor.")]


async def test_move_and_raise_a_waiting_call(database):
    store = _store(database)
    await seed_teams(store)
    await store.upsert_queue("support", teams=["red"])  # red owns support; billing belongs to nobody
    async with running_center(database, **SLOW_PBX) as rc:
        ws1, a1 = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        ws2, a2 = await open_console(rc.base, await cookie_for(rc.base, "agent2"))
        wsr, red = await open_console(rc.base, await cookie_for(rc.base, "sup_red"))
        wsb, blue = await open_console(rc.base, await cookie_for(rc.base, "sup_blue"))
        # nobody is ready: two callers wait in support (English, then 2)
        rc.sim.call(REGULAR_PHONE, digits=["1", "2"])
        rc.sim.call("+14155550199", digits=["1", "2"])
        engine = rc.center.runner.engine

        async def waiting(n: int) -> list[str]:
            async with asyncio.timeout(20):
                while len(engine.waiting()) < n:
                    await asyncio.sleep(0.02)
            return [c for c, _ in engine.waiting()]

        ids = await waiting(2)
        assert {engine.store.contact(i).queue for i in ids} == {"support"}
        last = int(ids[-1])
        await blue.send("contact_priority", interaction_id=last, by=50, request_id="b")
        assert (await seen_or_next(blue, "error", request_id="b"))["code"] == "forbidden"
        await red.send("contact_priority", interaction_id=last, by=50, request_id="r1")
        await seen_or_next(red, "intervention_done", request_id="r1")
        assert [c for c, _ in engine.waiting()][0] == str(last)

        # move it to agent2 (blue): red may not name another team's agent
        await red.send("contact_move", interaction_id=last, agent="agent2", request_id="r2")
        assert (await seen_or_next(red, "error", request_id="r2"))["code"] == "forbidden"
        await red.send("contact_move", interaction_id=last, agent="agent1", request_id="r3")
        await seen_or_next(red, "intervention_done", request_id="r3")
        # agent2 becomes ready first, but the moved call waits for agent1
        await a2.send("set_state", state="ready")
        await seen_or_next(a2, "agent_state", state="ready")
        first = await seen_or_next(a2, "offer")
        assert first["interaction_id"] != last
        await a1.send("set_state", state="ready")
        offer = await seen_or_next(a1, "offer")
        assert offer["interaction_id"] == last
        await red.send("contact_move", interaction_id=last, queue="billing", request_id="r4")
        assert (await seen_or_next(red, "error", request_id="r4"))["code"] == "conflict"  # no longer waiting
        for w in (ws1, ws2, wsr, wsb):
            await w.close()
    kinds = [(e.kind, (e.data or {}).get("action")) for e in await store.timeline(last)]
    assert ("supervisor", "contact_priority") in kinds and ("supervisor", "contact_move") in kinds
    assert ("escalate", "raise-priority") in kinds and ("escalate", "move-agent") in kinds
