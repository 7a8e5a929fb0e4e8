# ruff: noqa: E501
"""AMI Atxfer against the simulator over real TCP: the success path (AttendedTransfer, the target
ends up with the caller), the failure paths Asterisk 22 has (target does not answer or is busy:
the transferer is put back and unheld; transferee hangs up while the target rings:
AttendedTransfer Result Fail; unknown extension: unhold only) and the error responses.
The captured success path is compared event by event in test_conformance.py."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callcenter.asterisk.ami import Event
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.simulator import Dialplan, Simulator
from tests.callcenter.asterisk.watched import Env, until, watched_sim

DIALPLAN = """
[caller]
exten => s,1,Answer()
 same => n,Wait(120)
 same => n,Hangup()

[agent-in]
exten => _X.,1,Answer()
 same => n,Dial(PJSIP/${EXTEN},30,tT)
 same => n,Hangup()

[xfer]
exten => _X.,1,Dial(PJSIP/${EXTEN},5)
 same => n,Hangup()
"""


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = Simulator(dialplan=Dialplan.parse(DIALPLAN), agi_target=None, time_scale=0.01)
    sim.agent("1001", answer_after=0.2, talk_time=None)
    sim.agent("1002", never_answer=True)
    sim.agent("1003", busy=True)
    sim.agent("1004", answer_after=0.5, talk_time=None)
    async with watched_sim(sim) as env:
        yield env


async def bridged_call(sim: Simulator, client: AMIClient, seen: list[Event]) -> tuple[str, str]:
    """A caller (Local/1001@agent-in;2) bridged with agent 1001; returns (caller leg, agent leg)."""
    r = await client.send_action("Originate", Channel="Local/1001@agent-in", Context="caller", Exten="s",
                                 CallerID='"Erin" <+14155550133>', Async="true")
    assert r.ok
    enter = await until(seen, lambda e: e.name == "BridgeEnter" and e["Channel"].startswith("PJSIP/1001"))
    caller = next(c.name for c in sim.pbx.channels.values() if c.name.startswith("Local/1001@agent-in") and c.name.endswith(";2"))
    return caller, enter["Channel"]


def names(seen: list[Event], wanted: set[str]) -> list[str]:
    return [e.name for e in seen if e.name in wanted]


ORDER = {"Hold", "Unhold", "MusicOnHoldStart", "MusicOnHoldStop", "BridgeMerge", "AttendedTransfer",
         "LocalOptimizationBegin", "LocalOptimizationEnd"}


async def test_atxfer_success_target_gets_the_caller(env) -> None:
    sim, client, seen, tracker = env
    caller, agent = await bridged_call(sim, client, seen)
    r = await client.send_action("Atxfer", Channel=agent, Context="xfer", Exten="1004")
    assert r.response.message == "Atxfer successfully queued"
    digits = [e["Digit"] for e in seen if e.name == "DTMFEnd" and e["Channel"] == agent]
    await until(seen, lambda e: e.name == "DialEnd" and e["DestChannel"].startswith("Local/1004@xfer") and "Channel" not in e)
    digits = [e["Digit"] for e in seen if e.name == "DTMFEnd" and e["Channel"] == agent]
    assert digits == ["*", "2", "1", "0", "0", "4"]
    assert tracker.call_of(caller).on_hold  # type: ignore[union-attr]
    # the transferer hangs up: the transfer completes
    await client.send_action("Hangup", Channel=agent)
    at = await until(seen, lambda e: e.name == "AttendedTransfer")
    assert at["Result"] == "Success" and at["DestType"] == "Bridge" and at["TransfereeChannel"] == caller
    await until(seen, lambda e: e.name == "LocalOptimizationEnd")
    assert names(seen, ORDER) == ["Hold", "MusicOnHoldStart", "MusicOnHoldStop", "BridgeMerge", "AttendedTransfer",
                                  "LocalOptimizationBegin", "LocalOptimizationEnd"]
    # the caller now talks with agent 1004, in the caller's original bridge
    ch = sim.pbx.find_channel(caller)
    assert ch is not None and ch.bridge is not None
    assert sorted(c.name.rsplit("-", 1)[0] for c in ch.bridge.channels) == ["Local/1001@agent-in", "PJSIP/1004"]
    assert [t.kind for t in tracker.call_of(caller).transfers] == ["attended"]  # type: ignore[union-attr]
    assert not tracker.call_of(caller).on_hold  # type: ignore[union-attr]


@pytest.mark.parametrize("target", ["1002", "1003"])  # never answers (Dial timeout) / busy
async def test_atxfer_target_fails_transferer_is_put_back(env, target: str) -> None:
    sim, client, seen, tracker = env
    caller, agent = await bridged_call(sim, client, seen)
    await client.send_action("Atxfer", Channel=agent, Context="xfer", Exten=target)
    await until(seen, lambda e: e.name == "Unhold", timeout=10)
    await until(seen, lambda e: e.name == "BridgeDestroy" and e["BridgeUniqueid"] != "" and not sim.pbx.bridges.get(e["BridgeUniqueid"]), timeout=5)
    assert names(seen, ORDER) == ["Hold", "MusicOnHoldStart", "Unhold", "MusicOnHoldStop"]
    assert not any(e.name == "AttendedTransfer" for e in seen)
    # the agent is back with the caller, in the original bridge
    a, c = sim.pbx.find_channel(agent), sim.pbx.find_channel(caller)
    assert a is not None and c is not None and a.bridge is c.bridge and a.bridge is not None
    moves = [(e.name, e["Channel"]) for e in seen if e.name in ("BridgeEnter", "BridgeLeave") and e["Channel"] == agent]
    assert moves == [("BridgeEnter", agent), ("BridgeLeave", agent), ("BridgeEnter", agent), ("BridgeLeave", agent), ("BridgeEnter", agent)]
    assert not tracker.call_of(caller).on_hold  # type: ignore[union-attr]


async def test_atxfer_transferee_hangs_up_while_target_rings(env) -> None:
    sim, client, seen, tracker = env
    caller, agent = await bridged_call(sim, client, seen)
    await client.send_action("Atxfer", Channel=agent, Context="xfer", Exten="1002")
    await until(seen, lambda e: e.name == "DialBegin" and e.get("DestChannel", "").startswith("PJSIP/1002"))
    one = caller[:-1] + "1"
    await client.send_action("Hangup", Channel=one)
    at = await until(seen, lambda e: e.name == "AttendedTransfer")
    assert at["Result"] == "Fail" and at["OrigTransfererChannel"] == agent
    assert not any(t.kind == "attended" for t in tracker.call_of(agent).transfers)  # type: ignore[union-attr]


async def test_atxfer_unknown_extension_only_unholds(env) -> None:
    sim, client, seen, _ = env
    caller, agent = await bridged_call(sim, client, seen)
    await client.send_action("Atxfer", Channel=agent, Context="nosuchcontext", Exten="1004")
    await until(seen, lambda e: e.name == "MusicOnHoldStop")
    assert names(seen, ORDER) == ["Hold", "MusicOnHoldStart", "Unhold", "MusicOnHoldStop"]
    assert not any(e.name == "Newchannel" and "nosuchcontext" in e["Channel"] for e in seen)


async def test_atxfer_errors(env) -> None:
    sim, client, seen, _ = env
    r = await client.send_action("Atxfer", Channel="PJSIP/9999-00000001", Exten="1004")
    assert (r.response.name, r.response.message) == ("Error", "Channel specified does not exist")
    r = await client.send_action("Atxfer", Channel="PJSIP/9999-00000001")
    assert r.response.message == "No extension specified"
    r = await client.send_action("Atxfer", Exten="1004")
    assert r.response.message == "No channel specified"
