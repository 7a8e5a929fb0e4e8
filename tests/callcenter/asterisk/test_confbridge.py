# ruff: noqa: E501
"""ConfBridge in the simulator over real TCP, with the shipped [cc-conference] context: three
parties join (the caller marked, the others end_marked), the event header sets are Asterisk 22's
documented ones (no capture has ConfBridge), a member may leave first, and the caller leaving
ends the conference.  The tracker follows along."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callcenter.asterisk.ami import Event
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.simulator import Simulator
from tests.callcenter.asterisk.watched import Env, until, watched_sim

BRIDGE = ("BridgeUniqueid", "BridgeType", "BridgeTechnology", "BridgeCreator", "BridgeName", "BridgeNumChannels",
          "BridgeVideoSourceMode")
CHAN = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
        "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid")
KEYS = {
    "ConfbridgeStart": ("Privilege", "Conference", *BRIDGE),
    "ConfbridgeEnd": ("Privilege", "Conference", *BRIDGE),
    "ConfbridgeJoin": ("Privilege", "Conference", *BRIDGE, *CHAN, "Admin", "Muted"),
    "ConfbridgeLeave": ("Privilege", "Conference", *BRIDGE, *CHAN, "Admin"),
}


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sim = Simulator(agi_target=None, time_scale=0.01)
    async with watched_sim(sim) as env:
        yield env


async def join(client: AMIClient, seen: list[Event], role: str, conf: str) -> str:
    """Originate Local/<role>@cc-conference with CC_CONF: its ;2 half enters the conference."""
    r = await client.send_action("Originate", Channel=f"Local/{role}@cc-conference", Application="Wait", Data="300",
                                 Variable=f"CC_CONF={conf}", Async="true")
    assert r.ok
    ev = await until(seen, lambda e: e.name == "ConfbridgeJoin" and e["Exten"] == role
                     and not any(e is x for x in _used))
    _used.append(ev)
    return ev["Channel"]


_used: list[Event] = []


def names(seen: list[Event]) -> list[str]:
    return [e.name for e in seen if e.name.startswith("Confbridge")]


async def test_three_way_conference_ends_when_the_caller_leaves(env) -> None:
    sim, client, seen, tracker = env
    _used.clear()
    caller = await join(client, seen, "caller", "cc-7")
    agent = await join(client, seen, "member", "cc-7")
    other = await join(client, seen, "member", "cc-7")
    start = next(e for e in seen if e.name == "ConfbridgeStart")
    assert (start["Conference"], start["BridgeType"], start["BridgeTechnology"], start["BridgeCreator"],
            start["BridgeName"]) == ("cc-7", "base", "softmix", "ConfBridge", "cc-7")
    joins = [e for e in seen if e.name == "ConfbridgeJoin"]
    assert [e["Channel"] for e in joins] == [caller, agent, other]
    # each join comes before the channel's BridgeEnter into the conference bridge
    for j in joins:
        enter = next(e for e in seen if e.name == "BridgeEnter" and e["Channel"] == j["Channel"])
        assert seen.index(j) < seen.index(enter) and enter["BridgeUniqueid"] == start["BridgeUniqueid"]
    assert len(tracker.conferences["cc-7"].members) == 3
    # the agent leaves first: the conference goes on
    r = await client.send_action("Hangup", Channel=agent)
    assert r.ok
    left = await until(seen, lambda e: e.name == "ConfbridgeLeave")
    assert left["Channel"] == agent and "cc-7" in tracker.conferences
    # the caller leaves: the end_marked member is kicked and the conference ends
    await client.send_action("Hangup", Channel=caller)
    end = await until(seen, lambda e: e.name == "ConfbridgeEnd")
    assert end["Conference"] == "cc-7" and end["BridgeNumChannels"] == "0"
    assert names(seen) == ["ConfbridgeStart", "ConfbridgeJoin", "ConfbridgeJoin", "ConfbridgeJoin",
                           "ConfbridgeLeave", "ConfbridgeLeave", "ConfbridgeLeave", "ConfbridgeEnd"]
    assert [e["Channel"] for e in seen if e.name == "ConfbridgeLeave"] == [agent, caller, other]
    destroy = await until(seen, lambda e: e.name == "BridgeDestroy" and e["BridgeUniqueid"] == start["BridgeUniqueid"])
    assert seen.index(end) < seen.index(destroy)
    # the kicked member went on in the dialplan (Hangup) rather than staying in the conference
    await until(seen, lambda e: e.name == "Hangup" and e["Channel"] == other)
    assert "cc-7" not in tracker.conferences
    for e in seen:
        if e.name in KEYS:
            assert tuple(k for k, _ in e.headers)[1:] == KEYS[e.name], e.name


async def test_confbridge_kick_responses(env) -> None:
    sim, client, seen, _ = env
    _used.clear()
    caller = await join(client, seen, "caller", "cc-8")
    r = await client.send_action("ConfbridgeKick", Conference="nope", Channel=caller)
    assert (r.response.name, r.response.message) == ("Error", "No Conference by that name found.")
    r = await client.send_action("ConfbridgeKick", Conference="cc-8", Channel="PJSIP/9-00000009")
    assert r.response.message == "No Channel by that name found in Conference."
    r = await client.send_action("ConfbridgeKick", Conference="cc-8", Channel=caller)
    assert r.response.message == "User kicked"
    await until(seen, lambda e: e.name == "ConfbridgeEnd")
