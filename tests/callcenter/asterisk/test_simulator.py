# ruff: noqa: E501
"""The simulator's scenario API end to end, over real TCP: AMI client <-> simulator AMI server,
simulator FastAGI client <-> our FastAgiServer (port 0).  Time is scaled (no real waits)."""
from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import pytest

from callcenter.asterisk.ami import Event
from callcenter.asterisk.ami_client import AMIAuthenticationError, AMIClient
from callcenter.asterisk.fastagi import AgiSession, FastAgiServer
from callcenter.asterisk.hold import hold_actions, retrieve_actions
from callcenter.asterisk.simulator import Dialplan, Simulator
from callcenter.asterisk.simulator.scenario import CONFIG_DIR
from callcenter.asterisk.tracker import CallTracker

SCALE = 0.01
log: list[tuple[str, str]] = []


async def ivr(s: AgiSession) -> None:
    d = await s.get_data("welcome", 3000, 1)
    log.append(("ivr", d.digits or ""))
    await s.set_variable("ROUTE_TO", {"1": "PJSIP/1001", "2": "PJSIP/1002", "3": "PJSIP/1003"}.get(d.digits or "", "PJSIP/1001"))


async def after(s: AgiSession) -> None:
    status = await s.get_variable("DIALSTATUS")
    log.append(("after", status or ""))
    if status == "ANSWER":
        await s.set_variable("ROUTE_TO", "")
        await s.set_variable("CC_SURVEY", "1")
    else:  # ring-no-answer / busy: next agent, the contact keeps its place
        await s.set_variable("ROUTE_TO", "PJSIP/1001")


async def survey(s: AgiSession) -> None:
    d = await s.get_data("survey", 3000, 1)
    log.append(("survey", d.digits or ""))
    await s.set_variable("SURVEY_SCORE", d.digits or "")


@pytest.fixture
async def env() -> AsyncIterator[tuple[Simulator, FastAgiServer, AMIClient]]:
    log.clear()
    srv = FastAgiServer({"ivr": ivr, "after-dial": after, "survey": survey}, port=0)
    await srv.start()
    sim = Simulator(agi_target=f"agi://127.0.0.1:{srv.port}", time_scale=SCALE)
    sim.agent("1001", answer_after=1, talk_time=3)
    sim.agent("1002", never_answer=True)
    sim.agent("1003", busy=True)
    await sim.start()
    client = AMIClient("127.0.0.1", sim.ami_port, "cc", "ccsecret", ping_interval=None, reconnect=False)
    await client.start()
    yield sim, srv, client
    await client.close()
    await sim.close()
    await srv.close()


def test_shipped_dialplan_has_what_the_simulator_models() -> None:
    dp = Dialplan.load(CONFIG_DIR / "extensions.conf")
    text = (CONFIG_DIR / "extensions.conf").read_text()
    assert "AGI(${CC_AGI}/ivr)" in text and "/after-dial)" in text and "/survey)" in text
    code = "\n".join(line.split(";")[0] for line in text.splitlines())
    assert "Dial(${ROUTE_TO},${CC_RING_TIMEOUT},g)" in code and "F(" not in code
    assert '$["${AGISTATUS}" = "FAILURE"]' in text
    assert dp.find("cc-inbound", "5551234") is not None and dp.exists("cc-fallback", "s")
    assert dp.exists("cc-hold", "caller") and dp.exists("cc-hold", "agent")
    mgr = (CONFIG_DIR / "manager.conf").read_text()
    assert "bindaddr = 127.0.0.1" in mgr and "authtimeout" in mgr and "authlimit" in mgr
    assert "read = all" not in mgr and "write = all" not in mgr
    assert "[cc-fallback]" in (CONFIG_DIR / "queues.conf").read_text()


async def test_ivr_digits_dial_ring_no_answer_then_survey(env) -> None:
    sim, srv, client = env
    call = sim.call("+14155550100", digits=["2", "5"])  # 2 -> agent 1002 who never answers
    await call.wait_hangup(10)
    assert log == [("ivr", "2"), ("after", "NOANSWER"), ("after", "ANSWER"), ("survey", "5")]
    assert call.vars["SURVEY_SCORE"] == "5"


async def test_busy_agent_goes_back_to_agi(env) -> None:
    sim, srv, client = env
    call = sim.call("+14155550100", digits=["3", ""])
    await call.wait_hangup(10)
    assert log[:3] == [("ivr", "3"), ("after", "BUSY"), ("after", "ANSWER")]


async def test_caller_hangs_up_mid_ivr(env) -> None:
    sim, srv, client = env
    hung = client.subscribe("Hangup")
    call = sim.call("+14155550100", digits=[], hangup_after=1.0)
    await call.wait_hangup(5)
    ev = await asyncio.wait_for(hung.get(), 5)
    assert ev["Channel"] == call.name
    await asyncio.wait_for(srv.wait_idle(), 5)
    assert log == []  # the IVR's GET DATA failed with the hang-up (200 result=-1, then HANGUP)


async def test_fastagi_refuses_with_failure_line_goes_to_fallback_queue() -> None:
    srv = FastAgiServer({}, port=0)  # unknown script -> FAILURE line
    await srv.start()
    async with Simulator(agi_target=f"agi://127.0.0.1:{srv.port}", time_scale=SCALE) as sim:
        q = sim.subscribe()
        call = sim.call("+14155550100", abandon_after=3.0)
        join = await sim.wait_for_event(q, "QueueCallerJoin", 5)
        assert join["Queue"] == "cc-fallback" and call.vars["AGISTATUS"] == "FAILURE"
        await sim.wait_for_event(q, "QueueCallerAbandon", 5)
        await call.wait_hangup(5)
    await srv.close()


async def test_fastagi_down_goes_to_fallback_queue() -> None:
    async with Simulator(agi_target="agi://127.0.0.1:9", time_scale=SCALE) as sim:
        q = sim.subscribe()
        call = sim.call("+14155550100")
        join = await sim.wait_for_event(q, "QueueCallerJoin", 5)
        assert join["Queue"] == "cc-fallback" and call.vars["AGISTATUS"] == "FAILURE"
        call.hangup()
        await call.wait_hangup(5)


async def test_traffic_generator(env) -> None:
    sim, srv, client = env
    task = sim.traffic(rate=5, count=4, caller_ids=["+14155550101", "+14155550102"], digits=["1", "4"])
    calls = await asyncio.wait_for(task, 5)
    await asyncio.gather(*(c.wait_hangup(10) for c in calls))
    assert [c.channel.cid_num for c in calls] == ["+14155550101", "+14155550102"] * 2
    assert sorted(x for x in log if x[0] == "survey") == [("survey", "4")] * 4


async def test_originate_and_failures(env) -> None:
    sim, srv, client = env
    resp = client.subscribe("OriginateResponse")
    r = await client.send_action("Originate", Channel="PJSIP/1001", Context="cc-hold", Exten="agent", Priority=1, Async="true", CallerID='"Ann" <1001>')
    assert r.response.message == "Originate successfully queued"
    ev = await asyncio.wait_for(resp.get(), 5)
    assert ev["Response"] == "Success" and ev["Reason"] == "4" and ev.action_id == r.response.action_id
    bad = await client.send_action("Originate", Channel="PJSIP/1001", Context="nosuch", Exten="1", Priority=1, Async="true")
    assert not bad.ok and bad.response.message == "Extension does not exist."
    await client.send_action("Originate", Channel="PJSIP/1002", Context="cc-hold", Exten="agent", Priority=1, Async="true", Timeout=2000)
    ev = await asyncio.wait_for(resp.get(), 5)
    assert (ev["Response"], ev["Reason"]) == ("Failure", "3")
    await client.send_action("Originate", Channel="SIP/100", Context="cc-hold", Exten="agent", Priority=1, Async="true")
    ev = await asyncio.wait_for(resp.get(), 5)
    assert (ev["Response"], ev["Reason"]) == ("Failure", "0")


async def test_hold_retrieve_record_and_spy(env) -> None:
    sim, srv, client = env
    sim.agent("1001", answer_after=0.5, talk_time=None)
    tracker = CallTracker()
    client.subscribe(callback=lambda ev: tracker.feed(ev) if isinstance(ev, Event) else None)
    bridged = client.subscribe("BridgeEnter")
    call = sim.call("+14155550100", digits=["1", "5"])
    await asyncio.wait_for(bridged.get(), 5)
    await asyncio.wait_for(bridged.get(), 5)
    agent = next(c for c in sim.pbx.channels.values() if c.name.startswith("PJSIP/1001"))
    # record
    r = await client.send_action("MixMonitor", Channel=call.name, File="x.wav")
    assert r.ok and r.response.headers == (("Response", "Success"), ("ActionID", r.response.action_id))
    # hold: Redirect both legs; retrieve: Bridge
    moh = client.subscribe("MusicOnHoldStart")
    for a in hold_actions(call.name, agent.name):
        assert (await client.send_action(a)).response.message == "Dual Redirect successful"
    await asyncio.wait_for(moh.get(), 5)
    assert tracker.call_of(call.name).on_hold  # type: ignore[union-attr]
    stop = client.subscribe("MusicOnHoldStop")
    for a in retrieve_actions(call.name, agent.name):
        assert (await client.send_action(a)).response.message == "Channels have been bridged"
    await asyncio.wait_for(stop.get(), 5)
    # a supervisor listens, then whispers
    spy = client.subscribe("ChanSpyStart")
    await client.send_action("Originate", Channel="PJSIP/9000", Application="ChanSpy", Data="PJSIP/1001,qEw", Async="true")
    ev = await asyncio.wait_for(spy.get(), 5)
    assert ev["SpyeeChannel"] == agent.name
    stop_rec = await client.send_action("StopMixMonitor", Channel=call.name)
    again = await client.send_action("StopMixMonitor", Channel=call.name)
    assert stop_rec.ok and again.response.message == "Could not stop monitoring channel"
    # the agent hangs up: the caller goes on at the next priority of [cc-hold] -> after-dial -> survey
    sim.pbx.request_hangup(agent)
    await call.wait_hangup(10)
    assert ("survey", "5") in log


async def test_blind_transfer_and_atxfer(env) -> None:
    sim, srv, client = env
    sim.agent("1001", answer_after=0.5, talk_time=None)
    bridged = client.subscribe("BridgeEnter")
    call = sim.call("+14155550100", digits=["1"])
    await asyncio.wait_for(bridged.get(), 5)
    agent = next(c for c in sim.pbx.channels.values() if c.name.startswith("PJSIP/1001"))
    bt = client.subscribe("BlindTransfer")
    r = await client.send_action("BlindTransfer", Channel=agent.name, Context="cc-hold", Exten="caller")
    assert r.response.message == "Transfer succeeded"
    ev = await asyncio.wait_for(bt.get(), 5)
    assert ev["TransfereeChannel"] == call.name and ev["IsExternal"] == "Yes"
    call.hangup()
    await call.wait_hangup(5)


async def test_queue_actions_and_abandon(env) -> None:
    sim, srv, client = env
    r = await client.send_action("QueueAdd", Queue="cc-fallback", Interface="PJSIP/1002", MemberName="Bob", Paused="true")
    assert r.response.message == "Added interface to queue"
    dup = await client.send_action("QueueAdd", Queue="cc-fallback", Interface="PJSIP/1002")
    assert dup.response.message == "Unable to add interface: Already there"
    p = await client.send_action("QueuePause", Queue="cc-fallback", Interface="PJSIP/9999", Paused="true")
    assert p.response.message == "Interface not found"
    summary = await client.send_action("QueueSummary", Queue="cc-fallback")
    assert summary.events[0]["LoggedIn"] == "1" and summary.events[0]["Available"] == "0"
    sim.set_agi_target("agi://127.0.0.1:9")
    q = sim.subscribe()
    call = sim.call("+14155550100", abandon_after=30)
    await sim.wait_for_event(q, "QueueCallerJoin", 5)
    status = await client.send_action("QueueStatus", Queue="cc-fallback")
    assert [e.name for e in status.events if e.name != "QueueStatusComplete"] == ["QueueParams", "QueueMember", "QueueEntry"]
    ab = await sim.wait_for_event(q, "QueueCallerAbandon", 5)
    assert int(ab["HoldTime"]) >= 29
    rm = await client.send_action("QueueRemove", Queue="cc-fallback", Interface="PJSIP/1002")
    rm2 = await client.send_action("QueueRemove", Queue="cc-fallback", Interface="PJSIP/1002")
    assert rm.ok and rm2.response.message == "Unable to remove interface: Not there"
    await call.wait_hangup(5)


async def test_bad_login_unknown_action_logoff(env) -> None:
    sim, srv, client = env
    bad = AMIClient("127.0.0.1", sim.ami_port, "cc", "wrong", ping_interval=None, reconnect=False)
    sim.ami.auth_delay = 0.0
    with pytest.raises(AMIAuthenticationError):
        await bad.start()
    await bad.close()
    r = await client.send_action("NoSuchAction")
    assert r.response.message == "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available commands."
    md5 = AMIClient("127.0.0.1", sim.ami_port, "cc", "ccsecret", auth="md5", ping_interval=None, reconnect=False)
    await md5.start()
    assert (await md5.ping()).ok
    await md5.close()


async def test_shutdown_sends_event_then_eof(env) -> None:
    sim, srv, client = env
    shut = client.subscribe("Shutdown")
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    await reader.readline()
    writer.write(b"Action: Login\r\nUsername: cc\r\nSecret: ccsecret\r\n\r\nAction: Command\r\nCommand: core stop now\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)  # EOF, without a Response to the Command
    assert b"Authentication accepted" in data and b"Event: Shutdown" not in data
    ev = await asyncio.wait_for(shut.get(), 5)
    assert ev["Shutdown"] == "Cleanly" and ev["Restart"] == "False"
    writer.close()


def test_sim_cli_registers() -> None:
    from callcenter import sim_cli
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sim_cli.register(sub)
    args = parser.parse_args(["sim", "--ami-port", "0", "--duration", "0.2", "--agi", "agi://127.0.0.1:9",
                              "--rate", "20", "--calls", "2", "--agents", "1001", "--time-scale", "0.01"])
    assert args.func(None, args) == 0
