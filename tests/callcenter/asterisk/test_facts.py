# ruff: noqa: E501
"""One test per numbered protocol fact of the captures' README (asterisk-captures/README.md).

Facts about AMI/AGI behaviour are checked against the simulator over real TCP (the captured
scenario re-run as in test_conformance, or a direct session); facts about bytes the codec must
accept are also checked against the capture itself.
"""
from __future__ import annotations

import asyncio
import re

from callcenter.asterisk.ami import AMIConnection, Banner, Event, Response
from callcenter.asterisk.simulator import Dialplan, Simulator
from tests.callcenter.asterisk.test_agi_support import read_capture
from tests.callcenter.asterisk.test_conformance import SCALE, load, run_scenario
from tests.captures import CAPTURES

_CACHE: dict[str, tuple] = {}


async def scenario(name: str) -> tuple:
    if name not in _CACHE:
        _CACHE[name] = await run_scenario(name)
    return _CACHE[name]


def ev(msgs: list, name: str) -> list[Event]:
    return [m for m in msgs if isinstance(m, Event) and m.name == name]


def resp(msgs: list, aid: str) -> Response:
    return next(m for m in msgs if isinstance(m, Response) and m.action_id == aid)


def idx(msgs: list, pred) -> int:
    return next(i for i, m in enumerate(msgs) if pred(m))


def norm(text: str) -> str:
    return re.sub(r"-[0-9a-f]{8};", "-X;", text)


async def raw_session(sim: Simulator, login: bool = True) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    assert await r.readline() == b"Asterisk Call Manager/11.0.0\r\n"
    if login:
        w.write(b"Action: Login\r\nActionID: l\r\nUsername: cc\r\nSecret: ccsecret\r\n\r\n")
        await w.drain()
    return r, w


async def read_until(r: asyncio.StreamReader, needle: bytes, timeout: float = 3.0) -> bytes:
    buf = b""
    while needle not in buf:
        chunk = await asyncio.wait_for(r.read(65536), timeout)
        if not chunk:
            break
        buf += chunk
    return buf


async def test_fact_01_banner_then_login_before_fullybooted() -> None:
    sim = Simulator(time_scale=SCALE, agi_target=None)
    async with sim:
        r, w = await raw_session(sim, login=False)
        # no blank line after the banner: nothing more arrives before the Login
        try:
            early = await asyncio.wait_for(r.read(1), 0.05)
        except TimeoutError:
            early = b""
        assert early == b""
        w.write(b"Action: Login\r\nActionID: l\r\nUsername: cc\r\nSecret: ccsecret\r\n\r\n")
        await w.drain()
        data = await read_until(r, b"Event: SuccessfulAuth")
        assert data.startswith(b"Response: Success\r\nActionID: l\r\nMessage: Authentication accepted\r\n\r\n")
        assert data.index(b"Event: FullyBooted") < data.index(b"Event: SuccessfulAuth")
        w.close()
    cap, got, _ = await scenario("ami-edge")
    assert isinstance(got[0], Banner) and got[0].text == "Asterisk Call Manager/11.0.0"
    assert [m.name if isinstance(m, Event) else "R" for m in got[1:4]] == ["R", "FullyBooted", "SuccessfulAuth"]


async def test_fact_02_responses_before_the_events_they_cause() -> None:
    _, got, _ = await scenario("ami-queue-admin")
    qa = next(m for m in got if isinstance(m, Response) and (m.action_id or "").startswith("queueadd"))
    assert got.index(qa) < got.index(ev(got, "QueueMemberAdded")[0])
    _, got, _ = await scenario("ami-edge")
    ue = ev(got, "UserEvent")[0]
    assert got.index(resp(got, ue.action_id)) < got.index(ue)
    _, got, _ = await scenario("ami-transfer-blind")
    assert got.index(resp(got, "blindtransfer-1")) < got.index(ev(got, "BlindTransfer")[0])
    _, got, _ = await scenario("ami-hold-and-record")
    mm = resp(got, "mixmonitor-1")
    assert got.index(mm) < got.index(ev(got, "MixMonitorStart")[0])


async def test_fact_03_successful_responses_without_message() -> None:
    cap, got, _ = await scenario("ami-edge")
    pings = [m for m in got if isinstance(m, Response) and m.get("Ping")]
    assert pings and [k for k, _ in pings[0].headers] == ["Response", "ActionID", "Ping", "Timestamp"]
    evs = [m.get("Events") for m in got if isinstance(m, Response) and m.get("Events")]
    assert evs == [m.get("Events") for m in cap.messages if isinstance(m, Response) and m.get("Events")]
    assert evs[:3] == ["Off", "On", "On"]
    _, got, _ = await scenario("ami-hold-and-record")
    mix = [m for m in got if isinstance(m, Response) and "mixmonitor" in (m.action_id or "").lower() and m.name == "Success"]
    assert mix and all([k for k, _ in m.headers] == ["Response", "ActionID"] for m in mix)


async def test_fact_04_event_lists() -> None:
    _, got, _ = await scenario("ami-edge")
    sc = ev(got, "StatusComplete")
    assert sc and all(c["EventList"] == "Complete" and c["Items"] == c["ListItems"] for c in sc)
    st = ev(got, "Status")
    assert st and all(e.headers[1] == ("Privilege", "Call") and e.headers[-1][0] == "ActionID" for e in st)
    csc = ev(got, "CoreShowChannelsComplete")
    assert csc and csc[-1]["ListItems"] == "0"
    _, got, _ = await scenario("ami-queue-admin")
    names = [m.name for m in got if isinstance(m, Event) and m.name in ("QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete")]
    assert names[:5] == ["QueueParams", "QueueMember", "QueueMember", "QueueEntry", "QueueEntry"]
    assert [c["ListItems"] for c in ev(got, "QueueStatusComplete")] == ["5", "0"]


async def test_fact_05_errors() -> None:
    cap, got, _ = await scenario("ami-edge")
    msgs = {m.get("Message") for m in got if isinstance(m, Response) and m.name == "Error"}
    assert "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available commands." in msgs
    assert "Missing action in request" in msgs
    unknown = next(m for m in got if isinstance(m, Response) and "NoSuchAction" in (m.get("Message") or ""))
    assert isinstance(got[got.index(unknown) + 1], Event) and got[got.index(unknown) + 1].name == "RequestBadFormat"
    cli = [m for m in got if isinstance(m, Response) and m.name == "Error" and m.get("Message") == "Command output follows"]
    assert cli and cli[0].get("Output")
    sim = Simulator(time_scale=SCALE, agi_target=None)
    sim.ami.auth_delay = 1.0
    async with sim:
        r, w = await raw_session(sim, login=False)
        w.write(b"Action: Ping\r\nActionID: p\r\n\r\n")
        assert b"Message: Permission denied" in await read_until(r, b"denied")
        t0 = asyncio.get_running_loop().time()
        w.write(b"Action: Login\r\nActionID: l\r\nUsername: cc\r\nSecret: wrong\r\n\r\n")
        data = await read_until(r, b"\r\n\r\n\xff")  # until EOF
        assert b"Message: Authentication failed" in data
        assert asyncio.get_running_loop().time() - t0 >= 1.0 * SCALE * 0.9
        assert await r.read() == b""  # the server closed the connection


async def test_fact_06_originate() -> None:
    cap, got, _ = await scenario("ami-originate-errors")
    assert [m.get("Message") for m in got if isinstance(m, Response) and m.name == "Error"] == \
           [m.get("Message") for m in cap.messages if isinstance(m, Response) and m.name == "Error"]
    assert "Extension does not exist." in [m.get("Message") for m in got if isinstance(m, Response)]
    ors = ev(got, "OriginateResponse")
    assert {o["Reason"] for o in ors} <= {"4", "3", "0"} and all(o["Response"] in ("Success", "Failure") and o.action_id for o in ors)
    assert len(ors) == len(ev(cap.messages, "OriginateResponse"))  # the synchronous Originate has none


async def test_fact_07_queue_ordering() -> None:
    _, got, _ = await scenario("ami-queue-abandon")
    caller2 = next(m["Channel"] for m in ev(got, "QueueCallerJoin"))
    one = caller2[:-1] + "1"
    order = [m.name for m in got if isinstance(m, Event) and m.get("Channel") in (one, caller2)
             and m.name in ("Hangup", "MusicOnHoldStop", "QueueCallerAbandon", "QueueCallerLeave")]
    assert order == ["Hangup", "MusicOnHoldStop", "QueueCallerAbandon", "QueueCallerLeave", "Hangup"]
    assert ev(got, "QueueCallerLeave")[0]["Count"] == "0"
    _, got, _ = await scenario("ami-ring-no-answer")
    names = [m.name for m in got if isinstance(m, Event)]
    assert names.index("QueueCallerLeave") < names.index("AgentConnect")
    assert 3500 <= int(ev(got, "AgentRingNoAnswer")[0]["RingTime"]) <= 4500
    ac = ev(got, "AgentConnect")[0]
    assert int(ac["RingTime"]) < 100 and int(ac["HoldTime"]) < 100  # seconds
    comp = ev(got, "AgentComplete")[0]
    agent = comp["DestChannel"][:-2]
    hang = next(m for m in got if isinstance(m, Event) and m.name == "Hangup" and m["Channel"][:-2] == agent)
    assert got.index(hang) < got.index(comp)


async def test_fact_08_transfers() -> None:
    _, got, _ = await scenario("ami-transfer-redirect")
    assert not ev(got, "BlindTransfer") and not ev(got, "AttendedTransfer")
    _, got, _ = await scenario("ami-transfer-blind")
    bt = ev(got, "BlindTransfer")[0]
    assert bt["Result"] == "Success" and bt["IsExternal"] == "Yes" and bt.get("Context") and bt.get("Extension")
    assert bt.get("TransfererChannel") and bt.get("TransfereeChannel") and bt.get("BridgeUniqueid")
    _, got, _ = await scenario("ami-transfer-atxfer")
    dt = [e for e in ev(got, "DTMFEnd")]
    assert [e["Digit"] for e in dt] == ["*", "2", "5", "0", "2", "2"] and all(e["Direction"] == "Received" for e in dt)
    hold = ev(got, "Hold")[0]
    assert got.index(dt[-1]) < got.index(hold) < got.index(ev(got, "MusicOnHoldStart")[-1])


async def test_fact_09_local_channels_and_chanspy() -> None:
    _, got, _ = await scenario("ami-queue-abandon")
    halves = {m["Channel"][-2:] for m in ev(got, "Newchannel")}
    assert halves == {";1", ";2"} and ev(got, "LocalBridge")
    for name, half in (("ami-chanspy-listen", ";2"), ("ami-chanspy-whisper", ";2"), ("ami-chanspy-barge", ";1")):
        _, got, _ = await scenario(name)
        start = ev(got, "ChanSpyStart")[0]
        assert start["SpyeeChannel"].startswith("Local/4001@agents-") and start["SpyeeChannel"].endswith(half), name
        assert ev(got, "ChanSpyStop")


async def test_fact_10_shutdown() -> None:
    sim = Simulator(dialplan=Dialplan.load(CAPTURES / "extensions-scenarios.conf.used"), time_scale=SCALE,
                    agi_target=None)
    async with sim:
        r1, w1 = await raw_session(sim)
        r2, w2 = await raw_session(sim)
        await read_until(r1, b"SuccessfulAuth")
        await read_until(r2, b"SuccessfulAuth")
        w1.write(b"Action: Originate\r\nActionID: o\r\nChannel: Local/2001@agents\r\nApplication: Wait\r\nData: 30\r\nAsync: true\r\n\r\n")
        await w1.drain()
        await read_until(r1, b"OriginateResponse")
        w2.write(b"Action: Command\r\nActionID: stop\r\nCommand: core stop now\r\n\r\n")
        await w2.drain()
        obs = await asyncio.wait_for(r1.read(), 3)
        stopper = await asyncio.wait_for(r2.read(), 3)
        assert b"ActionID: stop" not in stopper and b"Event: Shutdown" not in stopper  # no Response, no Shutdown: EOF
        assert obs.rindex(b"Event: Hangup") < obs.index(b"Event: Shutdown")
        assert obs.endswith(b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: False\r\n\r\n")
    cap = load("ami-shutdown-observer")
    assert [m.name for m in cap.messages if isinstance(m, Event)][-1] == "Shutdown"
    _, got, _ = await scenario("ami-edge")
    assert isinstance(got[-1], Response) and got[-1].name == "Goodbye" and got[-1].get("Message") == "Thanks for all the fish."


def _flat(transcript) -> list[str]:
    return [norm(line) for _, lines in transcript.exchanges for line in lines]


async def test_fact_11_fastagi_details() -> None:
    _, _, agi = await scenario("ami-agi-edge")
    want = read_capture("agi-edge")[0]
    env = dict(agi[0].env)
    assert env["agi_network_script"] == "ivr?lang=en" and env["agi_arg_1"] == "first arg" and env["agi_arg_2"] == "second"
    keys = [k for k, _ in agi[0].env]
    assert keys == [k for k, _ in want.env]  # agi_arg_N after agi_threadid; ends with the blank line
    assert [c for c, _ in agi[0].exchanges] == want.sent
    assert _flat(agi[0]) == [norm(x) for x in want.received]  # timeout, -2, endpos, -1 + HANGUP + 511, 200s when dead
    assert not agi[0].closed_by_peer  # the simulator did not close: the server had to


async def test_fact_12_agi_520_usage_blocks() -> None:
    _, _, agi = await scenario("ami-agi-edge")
    want = read_capture("agi-badarg")[0]
    assert _flat(agi[1]) == want.received
    assert want.received[0] == "520-Invalid command syntax.  Proper usage follows:"
    raw = (CAPTURES / "fastagi-session.txt").read_text()
    assert "510 Invalid or unknown command" in raw


async def test_fact_13_park_response_stray_lf() -> None:
    raw = (CAPTURES / "ami-park-retrieve.raw").read_bytes()
    assert b"Message: Park successful\n\r\n\r\n" in raw
    conn = AMIConnection()
    conn.receive_data(raw)  # the codec tolerates it
    cap = load("ami-park-retrieve")
    assert [m.get("Message") for m in cap.messages if isinstance(m, Response) and m.action_id in ("park-2", "park-3")] == \
           ["Park successful"] * 2 or all("Park successful" in (m.get("Message") or "") for m in cap.messages
                                          if isinstance(m, Response) and m.action_id in ("park-2", "park-3"))
    sim = Simulator(dialplan=Dialplan.load(CAPTURES / "extensions-scenarios2.conf.used"), time_scale=SCALE,
                    agi_target=None)
    async with sim:
        r, w = await raw_session(sim)
        w.write(b"Action: Park\r\nActionID: p1\r\nChannel: Local/nosuch-channel;2\r\n\r\n")
        w.write(b"Action: Originate\r\nActionID: o\r\nChannel: Local/8001@park-in\r\nContext: caller-wait\r\nExten: 40\r\nPriority: 1\r\nAsync: true\r\n\r\n")
        await w.drain()
        data = await read_until(r, b"Message: Channel does not exist: Local/nosuch-channel;2\r\n\r\n")
        await asyncio.sleep(2.0 * SCALE + 0.05)
        chan = next(c.name for c in sim.pbx.channels.values() if c.name.startswith("Local/8001@park-in-") and c.name.endswith(";2"))
        w.write(f"Action: Park\r\nActionID: p2\r\nChannel: {chan}\r\n\r\n".encode())
        await w.drain()
        data = await read_until(r, b"ActionID: p2")
        data += await read_until(r, b"\r\n\r\n")
        assert b"Response: Success\r\nActionID: p2\r\nMessage: Park successful\n\r\n\r\n" in data
        w.close()


async def test_fact_14_parking_event_order() -> None:
    _, got, _ = await scenario("ami-park-retrieve")
    r2 = got.index(resp(got, "park-2"))
    after = [m.name for m in got[r2 + 1:] if isinstance(m, Event) and m.name in
             ("BridgeCreate", "BridgeLeave", "BridgeEnter", "MusicOnHoldStart", "ParkedCall")]
    assert after[:5] == ["BridgeCreate", "BridgeLeave", "BridgeEnter", "MusicOnHoldStart", "ParkedCall"]
    assert next(m for m in got[r2 + 1:] if isinstance(m, Event) and m.name == "BridgeCreate")["BridgeType"] == "parking"
    r3 = got.index(resp(got, "park-3"))
    after = [m.name for m in got[r3 + 1:] if isinstance(m, Event) and m.name in ("BridgeLeave", "BridgeEnter", "ParkedCall")]
    assert after[:3] == ["ParkedCall", "BridgeLeave", "BridgeEnter"]
    pc = ev(got, "ParkedCall")[0]
    assert [k for k, _ in pc.headers][-5:] == ["ParkerDialString", "Parkinglot", "ParkingSpace", "ParkingTimeout", "ParkingDuration"]
    parker = next(m["Channel"] for m in ev(got, "Newchannel") if m["Channel"].startswith("Local/8001@park-agents-") and m["Channel"].endswith(";1"))
    hang = next(m for m in got if isinstance(m, Event) and m.name == "Hangup" and m["Channel"] == parker)
    assert got.index(ev(got, "UnParkedCall")[0]) < got.index(hang)


async def test_fact_15_retrieval_and_giveup() -> None:
    _, got, _ = await scenario("ami-park-retrieve")
    un = got.index(ev(got, "UnParkedCall")[0])
    parkee = ev(got, "UnParkedCall")[0]["ParkeeChannel"]
    seq = [m.name for m in got[:un] if isinstance(m, Event) and m.name in ("MusicOnHoldStop", "BridgeLeave", "BridgeEnter")][-4:]
    assert seq == ["MusicOnHoldStop", "BridgeLeave", "BridgeEnter", "BridgeEnter"]
    assert [m["Channel"] for m in got[:un] if isinstance(m, Event) and m.name == "MusicOnHoldStop"][-1] == parkee
    assert any(k.startswith("Retriever") for k, _ in ev(got, "UnParkedCall")[0].headers)
    gu = ev(got, "ParkedCallGiveUp")[0]
    hang = next(m for m in got if isinstance(m, Event) and m.name == "Hangup" and m["Channel"] == gu["ParkeeChannel"][:-1] + "1")
    assert got.index(hang) < got.index(gu)
    assert 50 <= int(gu["ParkingTimeout"]) <= 55 and int(gu["ParkingTimeout"]) + int(gu["ParkingDuration"]) == 60


async def test_fact_16_parking_lists() -> None:
    _, got, _ = await scenario("ami-park-retrieve")
    lots = ev(got, "Parkinglot")
    assert lots and [k for k, _ in lots[0].headers if k not in ("Event", "ActionID")] == ["Name", "StartSpace", "StopSpace", "Timeout"]
    items = [m for m in ev(got, "ParkedCall") if m.action_id]
    assert items and all(m.get("Privilege") is None and m.headers[-1][0] == "ActionID" for m in items)
    comp = ev(got, "ParkedCallsComplete")
    assert all(c.get("ListItems") is not None and c.get("Total") is not None for c in comp)
    assert (comp[-1]["ListItems"], comp[-1]["Total"]) == ("0", "0") and resp(got, "parked-3").name == "Success"


async def test_fact_17_ami_bridge() -> None:
    cap, got, _ = await scenario("ami-bridge-action")
    ok = next(m for m in got if isinstance(m, Response) and m.get("Message") == "Channels have been bridged")
    after = [m.name for m in got[got.index(ok) + 1:] if isinstance(m, Event) and m.name in ("BridgeCreate", "MusicOnHoldStop", "BridgeEnter")]
    assert after[:4] == ["BridgeCreate", "MusicOnHoldStop", "BridgeEnter", "BridgeEnter"]
    assert any((m.get("Message") or "").startswith("Channel1 does not exist: ") for m in got if isinstance(m, Response))
    assert "Channel Hungup" in [m.get("Message") for m in got if isinstance(m, Response)]
    # the survivor goes on at the next priority: MusicOnHold was priority 2, then Hangup at 3
    ne = [m for m in ev(got, "Newexten") if m["Context"] == "bridge-wait" and m["Application"] == "Hangup"]
    assert ne and ne[0]["Priority"] == "3"


async def test_fact_18_fastagi_around_dial() -> None:
    _, got, agi = await scenario("ami-dial-return")
    want = read_capture("agi-dial-return")
    assert [dict(t.env)["agi_priority"] for t in agi] == ["2", "5"] == [dict(s.env)["agi_priority"] for s in want]
    for t, s in zip(agi, want, strict=True):
        assert _flat(t) == [norm(x) for x in s.received]
    assert "NOANSWER|||0" in _flat(agi[1])[-4:] or any("NOANSWER|||0" in x for x in _flat(agi[1]))
    assert "NOANSWER" in [e["DialStatus"] for e in ev(got, "DialEnd")]
    assert ev(got, "AGIExecStart") and len(ev(got, "AGIExecStart")) == len(ev(got, "AGIExecEnd"))


async def test_fact_19_survey_get_data() -> None:
    _, got, agi = await scenario("ami-survey")
    want = read_capture("agi-survey")
    assert [_flat(t) for t in agi] == [[norm(x) for x in s.received] for s in want]
    assert "200 result=4" in _flat(agi[0])
    start = next(m for m in ev(got, "AGIExecStart") if m["Command"].startswith("GET DATA"))
    end = next(m for m in ev(got, "AGIExecEnd") if m["Command"].startswith("GET DATA"))
    dtmf = [m for m in got[got.index(start):got.index(end)] if isinstance(m, Event) and m.name in ("DTMFBegin", "DTMFEnd")]
    assert [(m.name, m["Digit"], m["Direction"]) for m in dtmf] == [("DTMFBegin", "4", "Received"), ("DTMFEnd", "4", "Received")]
    assert all(m["Channel"] == start["Channel"] for m in dtmf)
