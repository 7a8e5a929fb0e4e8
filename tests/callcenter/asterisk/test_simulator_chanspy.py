"""ChanSpy in the simulator over real AMI TCP (issue 15): Originate into ChanSpy with the barge
option, the events of the captures (ChanSpyStart naming spyer and spyee, ChanSpyStop when the
spyer hangs up), and the `d` option's DTMF mode switch through PlayDTMF `Receive: yes`."""
from __future__ import annotations

import asyncio

import pytest

from callcenter.asterisk.ami import make_action
from callcenter.services.interventions import spy_data
from tests.callcenter.asterisk.test_simulator import env  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


def test_spy_data_options() -> None:
    assert spy_data("PJSIP/1001-00000003", "listen") == "PJSIP/1001-00000003,qEd"
    assert spy_data("PJSIP/1001-00000003", "whisper") == "PJSIP/1001-00000003,qEdw"
    assert spy_data("PJSIP/1001-00000003", "barge") == "PJSIP/1001-00000003,qEdB"


async def test_originate_into_chanspy_barge_then_dtmf_switches(env) -> None:  # noqa: F811
    sim, _srv, client = env
    sim.agent("1001", answer_after=0.5, talk_time=None)
    sim.agent("2001", answer_after=0.1, talk_time=None)  # the supervisor's phone
    bridged = client.subscribe("BridgeEnter")
    sim.call("+14155550100", digits=["1", "5"])
    await asyncio.wait_for(bridged.get(), 5)
    await asyncio.wait_for(bridged.get(), 5)
    agent = next(c for c in sim.pbx.channels.values() if c.name.startswith("PJSIP/1001"))
    events: asyncio.Queue = asyncio.Queue()
    client.subscribe(None, callback=events.put_nowait)

    async def wait(name: str, **match: str):
        async def find():
            while True:
                ev = await events.get()
                if getattr(ev, "name", None) == name and all(ev.get(k) == v for k, v in match.items()):
                    return ev
        return await asyncio.wait_for(find(), 10)

    r = await client.send_action(make_action(
        "Originate", action_id="spy-1", Channel="PJSIP/2001", Application="ChanSpy",
        Data=spy_data(agent.name, "barge"), CallerID='"Supervisor" <2001>', Timeout=30000, Async="true"))
    assert r.ok and r.response.message == "Originate successfully queued"
    resp = await wait("OriginateResponse", ActionID="spy-1")
    assert (resp["Response"], resp["Application"]) == ("Success", "ChanSpy")
    assert resp["Data"] == f"{agent.name},qEdB"
    start = await wait("ChanSpyStart")
    assert start["SpyeeChannel"] == agent.name and start["SpyerChannel"] == resp["Channel"]
    assert start["SpyerCallerIDNum"] == "2001"
    spyer = sim.pbx.find_channel(resp["Channel"])
    assert spyer.spying[1] == "barge"

    for digit, mode in (("5", "whisper"), ("4", "listen"), ("6", "barge")):
        r = await client.send_action("PlayDTMF", Channel=spyer.name, Digit=digit, Receive="yes")
        assert r.ok and r.response.message == "DTMF successfully queued"
        dtmf = await wait("DTMFEnd", Channel=spyer.name)
        assert (dtmf["Digit"], dtmf["Direction"]) == (digit, "Received")
        assert spyer.spying[1] == mode
    bad = await client.send_action("PlayDTMF", Channel="PJSIP/none-00000000", Digit="5")
    assert not bad.ok and bad.response.message == "Channel not found"

    r = await client.send_action("Hangup", Channel=spyer.name)
    assert r.ok
    stop = await wait("ChanSpyStop", SpyerChannel=spyer.name)
    assert stop["SpyeeChannel"] == agent.name
    await wait("Hangup", Channel=spyer.name)
    assert not agent.hungup  # the call goes on
