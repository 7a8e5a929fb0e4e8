# ruff: noqa: E501
"""Conformance: each captured scenario is run through the simulator (same dialplan, same queues,
the same actions at the same virtual times, a FastAGI server that sends the captured commands)
and its output is compared with the capture: responses and error texts, the full list of header
keys of every event, and the order of the events that matter to the scenario.

Values that must differ (uniqueids, times, channel suffixes, bridge ids) are not compared.
"""
from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache

import pytest

from callcenter.asterisk.ami import (
    AMIConnection,
    Banner,
    ConnectionClosed,
    Event,
    NeedData,
    Response,
    encode_action,
    make_action,
)
from callcenter.asterisk.simulator import Dialplan, Simulator, parse_queues_conf
from tests.callcenter.asterisk.test_agi_support import read_capture
from tests.captures import CAPTURES

SCALE = 0.1  # real seconds per virtual second: larger is slower but calmer on a busy machine
CLI_SHUTDOWN = {"ami-shutdown-cli-with-call": 1.0}  # capture -> t of `core stop now` at the CLI


# ------------------------------------------------------------------------------ reading captures


@dataclass
class Capture:
    name: str
    actions: list[tuple[float, list[tuple[str, str]]]] = field(default_factory=list)
    messages: list[Response | Event | Banner] = field(default_factory=list)


@cache
def load(name: str) -> Capture:
    cap = Capture(name)
    text = (CAPTURES / f"{name}.txt").read_text()
    for line in text.splitlines():
        m = re.match(r"^#\s+t=\s*([\d.]+)\s+(.*)$", line)
        if m:
            hdrs = [tuple(p.strip().split(": ", 1)) if ": " in p else (p.strip(), "")
                    for p in m.group(2).split(" | ")]
            cap.actions.append((float(m.group(1)), hdrs))  # type: ignore[arg-type]
    conn = AMIConnection()
    conn.receive_data((CAPTURES / f"{name}.raw").read_bytes())
    conn.receive_data(b"")
    while True:
        ev = conn.next_event()
        if isinstance(ev, (NeedData, ConnectionClosed)):
            break
        cap.messages.append(ev)  # type: ignore[arg-type]
    return cap


@cache
def all_key_layouts() -> dict[str, set[tuple[str, ...]]]:
    layouts: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for path in CAPTURES.glob("ami-*.raw"):
        for msg in load(path.stem).messages:
            if isinstance(msg, Event):
                layouts[msg.name].add(tuple(k for k, _ in msg.headers))
    return layouts


def prefix_of(channel: str) -> tuple[str, str]:
    """``Local/5011@agents-00000008;1`` -> (``Local/5011@agents``, ``;1``)."""
    m = re.match(r"^(.*)-[0-9a-f]{8}(;\d)?$", channel)
    return (m.group(1), m.group(2) or "") if m else (channel, "")


def channel_order(messages: list[Response | Event | Banner]) -> list[str]:
    return [m["Channel"] for m in messages if isinstance(m, Event) and m.name == "Newchannel"]


def map_channel(name: str, cap_msgs: list, sim_msgs: list) -> str:
    """The simulator's channel that plays the part of the captured channel ``name``."""
    pre, half = prefix_of(name)
    cap_same = [c for c in channel_order(cap_msgs) if prefix_of(c) == (pre, half)]
    sim_same = [c for c in channel_order(sim_msgs) if prefix_of(c) == (pre, half)]
    if name in cap_same and cap_same.index(name) < len(sim_same):
        return sim_same[cap_same.index(name)]
    return name


# ------------------------------------------------------------------------------ running


@dataclass
class AgiTranscript:
    """One FastAGI session as the test's server saw it: the environment, then per command the
    line sent and the lines Asterisk (here: the simulator) answered, ``HANGUP`` included."""
    env: list[tuple[str, str]] = field(default_factory=list)
    exchanges: list[tuple[str, list[str]]] = field(default_factory=list)
    closed_by_peer: bool = False


class RawAgiServer:
    """A FastAGI server speaking raw lines: it sends each captured command line exactly as the
    capture shows it (bad arguments included), one session after another, reads the reply lines
    up to the final ``NNN `` line, and closes the socket itself when its script is done."""

    def __init__(self, captures: tuple[str, ...]) -> None:
        self.queue = [s for name in captures for s in read_capture(name)]
        self.transcripts: list[AgiTranscript] = []
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tr = AgiTranscript()
        self.transcripts.append(tr)
        try:
            while True:
                line = (await reader.readline()).decode()
                if not line or line == "\n":
                    break
                k, _, v = line.rstrip("\n").partition(": ")
                tr.env.append((k, v))
            script = self.queue.pop(0).sent if self.queue else []
            for cmd in script:
                writer.write(cmd.encode() + b"\n")
                await writer.drain()
                got: list[str] = []
                while True:
                    raw = await reader.readline()
                    if not raw:
                        tr.closed_by_peer = True
                        break
                    text = raw.decode().rstrip("\n")
                    got.append(text)
                    if re.match(r"^\d{3} ", text):
                        break
                tr.exchanges.append((cmd, got))
                if tr.closed_by_peer:
                    break
        finally:
            writer.close()


async def run_capture(name: str, *, dialplan: str = "extensions-scenarios2.conf.used",
                      agi_capture: str | tuple[str, ...] | None = None, settle: float = 3.0,
                      agi_out: list[AgiTranscript] | None = None) -> tuple[Capture, list]:
    cap = load(name)
    srv = RawAgiServer((agi_capture,) if isinstance(agi_capture, str) else tuple(agi_capture or ()))
    await srv.start()
    sim = Simulator(dialplan=Dialplan.load(CAPTURES / dialplan),
                    queues=parse_queues_conf((CAPTURES / "queues-scenarios.conf.used").read_text()),
                    agi_target=None, time_scale=SCALE)
    sim.pbx.globals["CC_AGI"] = f"agi://127.0.0.1:{srv.port}"
    # the captures' dialplan hard-codes agi://127.0.0.1:4573: point it at our server
    for ctx in sim.pbx.dialplan.contexts.values():
        for ext in ctx.extensions:
            for prio, step in list(ext.steps.items()):
                if "127.0.0.1:4573" in step.data:
                    ext.steps[prio] = type(step)(step.priority, step.label, step.app,
                                                 step.data.replace("127.0.0.1:4573", f"127.0.0.1:{srv.port}"))
    sim.ami.auth_delay = 1.0
    received: list = []
    async with sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        conn = AMIConnection()

        async def read_all() -> None:
            while True:
                data = await reader.read(65536)
                conn.receive_data(data)
                while True:
                    ev = conn.next_event()
                    if isinstance(ev, NeedData):
                        break
                    if isinstance(ev, ConnectionClosed):
                        return
                    received.append(ev)
                if not data:
                    return

        reading = asyncio.ensure_future(read_all())
        start = asyncio.get_running_loop().time()
        if name in CLI_SHUTDOWN:  # `core stop now` typed at the CLI (not an AMI action)

            async def cli_stop() -> None:
                await asyncio.sleep(CLI_SHUTDOWN[name] * SCALE)
                await sim.ami.shutdown()

            stopping = asyncio.ensure_future(cli_stop())
        for t, hdrs in cap.actions:
            delay = start + t * SCALE - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            fixed = []
            for k, v in hdrs:
                if k in ("Channel", "Channel1", "Channel2", "ExtraChannel", "TimeoutChannel") and "-" in v:
                    v = map_channel(v, cap.messages, received)
                fixed.append((k, v))
            action = make_action(dict(fixed).get("Action", ""), [(k, v) for k, v in fixed if k != "Action"])
            data = encode_action(action) if fixed and fixed[0][0] == "Action" else (
                "".join(f"{k}: {v}\r\n" for k, v in fixed) + "\r\n").encode()
            writer.write(data)
            await writer.drain()
        try:
            await asyncio.wait_for(asyncio.shield(reading), settle)
        except TimeoutError:
            pass
        reading.cancel()
        if name in CLI_SHUTDOWN:
            await stopping
        writer.close()
    await srv.close()
    if agi_out is not None:
        agi_out.extend(srv.transcripts)
    return cap, received


# ------------------------------------------------------------------------------ comparisons


def responses(msgs: list) -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    return {m.action_id: (m.name, m.message, tuple(k for k, _ in m.headers))
            for m in msgs if isinstance(m, Response) and m.action_id}


def assert_same_responses(cap: Capture, got: list, skip: tuple[str, ...] = ()) -> None:
    want, have = responses(cap.messages), responses(got)
    for aid, value in want.items():
        if aid in skip:
            continue
        assert have.get(aid) == value, f"{cap.name}: response to {aid}"


def assert_keys_conform(got: list, names: set[str] | None = None) -> None:
    layouts = all_key_layouts()
    for m in got:
        if isinstance(m, Event) and m.name in layouts and (names is None or m.name in names):
            keys = tuple(k for k, _ in m.headers)
            assert keys in layouts[m.name], f"{m.name}: {keys} not in {layouts[m.name]}"


def names_in(msgs: list, wanted: set[str]) -> list[str]:
    return [m.name for m in msgs if isinstance(m, Event) and m.name in wanted]


def app_sequence(msgs: list, prefix: str) -> dict[str, list[str]]:
    """Applications run by each half of the channels whose name starts with ``prefix``."""
    out: dict[str, list[str]] = defaultdict(list)
    for m in msgs:
        if isinstance(m, Event) and m.name == "Newexten" and m["Channel"].startswith(prefix):
            out[m["Channel"][-2:]].append(m["Application"])
    return dict(out)


# ------------------------------------------------------------------------------ tests


async def test_edge_session() -> None:
    cap, got = await run_capture("ami-edge", settle=1.0)
    assert isinstance(got[0], Banner) and got[0].text == "Asterisk Call Manager/11.0.0"
    assert_same_responses(cap, got, skip=("cmd-1",))
    assert_keys_conform(got)
    order = {"UserEvent", "FullyBooted", "SuccessfulAuth", "StatusComplete", "CoreShowChannelsComplete",
             "RequestBadFormat", "OriginateResponse"}
    assert names_in(got, order) == names_in(cap.messages, order)
    # Login's Response comes before FullyBooted and SuccessfulAuth (fact 1)
    names = [m.name if isinstance(m, Event) else "R" for m in got[1:4]]
    assert names == ["R", "FullyBooted", "SuccessfulAuth"]
    # UserEvent while Events: off is not delivered, and repeats the ActionID (fact 2)
    ue = [m for m in got if isinstance(m, Event) and m.name == "UserEvent"]
    assert [e["UserEvent"] for e in ue] == ["WhileEventsOn"] and ue[0].action_id == "userevent-5"
    # Status items say Privilege: Call and end with ActionID; StatusComplete has Items (fact 4)
    st = [m for m in got if isinstance(m, Event) and m.name == "Status"]
    assert st and all(e.headers[1] == ("Privilege", "Call") and e.headers[-1][0] == "ActionID" for e in st)
    # Logoff: Goodbye then EOF
    assert isinstance(got[-1], Response) and got[-1].name == "Goodbye"


async def test_bad_login_closes() -> None:
    cap, got = await run_capture("ami-edge-badlogin", settle=2.0)
    assert_same_responses(cap, got)
    assert [m.name for m in got] == [m.name for m in cap.messages]


async def test_queue_admin() -> None:
    cap, got = await run_capture("ami-queue-admin", dialplan="extensions-scenarios.conf.used", settle=1.0)
    assert_same_responses(cap, got)
    assert_keys_conform(got)
    lists = {"QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete", "QueueSummary",
             "QueueSummaryComplete"}
    assert names_in(got, lists) == names_in(cap.messages, lists)
    members = {"QueueMemberAdded", "QueueMemberPause", "QueueMemberRemoved", "QueueCallerJoin"}
    assert names_in(got, members) == names_in(cap.messages, members)
    complete = [m for m in got if isinstance(m, Event) and m.name == "QueueStatusComplete"]
    assert [c["ListItems"] for c in complete] == ["5", "0"]  # fact 4: unknown queue -> 0 items


async def test_queue_abandon() -> None:
    cap, got = await run_capture("ami-queue-abandon", dialplan="extensions-scenarios.conf.used", settle=1.0)
    assert_same_responses(cap, got)
    assert_keys_conform(got)
    order = {"QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "OriginateResponse", "LocalBridge"}
    assert names_in(got, order) == names_in(cap.messages, order)
    members = {"QueueMemberAdded", "QueueMemberRemoved"}
    assert names_in(got, members) == names_in(cap.messages, members)
    # fact 7: the caller's hangup, then QueueCallerAbandon, then QueueCallerLeave with Count 0
    ab = next(m for m in got if isinstance(m, Event) and m.name == "QueueCallerAbandon")
    lv = next(m for m in got if isinstance(m, Event) and m.name == "QueueCallerLeave")
    assert got.index(ab) < got.index(lv) and lv["Count"] == "0"
    assert app_sequence(got, "Local/q-abandon") == app_sequence(cap.messages, "Local/q-abandon")


async def test_ring_no_answer() -> None:
    cap, got = await run_capture("ami-ring-no-answer", dialplan="extensions-scenarios.conf.used", settle=1.0)
    assert_same_responses(cap, got)
    assert_keys_conform(got)
    order = {"QueueCallerJoin", "AgentCalled", "AgentRingNoAnswer", "QueueCallerLeave", "AgentConnect",
             "AgentComplete", "BridgeCreate", "BridgeDestroy", "OriginateResponse"}
    assert names_in(got, order) == names_in(cap.messages, order)
    rna = next(m for m in got if isinstance(m, Event) and m.name == "AgentRingNoAnswer")
    assert 3500 <= int(rna["RingTime"]) <= 4500  # milliseconds (fact 7)


async def test_dial_return_to_agi() -> None:
    cap, got = await run_capture("ami-dial-return", agi_capture="agi-dial-return", settle=1.0)
    assert_same_responses(cap, got)
    assert_keys_conform(got)
    order = {"DialBegin", "DialState", "DialEnd", "AGIExecStart", "AGIExecEnd", "BridgeEnter", "BridgeLeave",
             "OriginateResponse"}
    assert names_in(got, order) == names_in(cap.messages, order)
    assert app_sequence(got, "Local/8300@agi-dial") == app_sequence(cap.messages, "Local/8300@agi-dial")
    statuses = [m["DialStatus"] for m in got if isinstance(m, Event) and m.name == "DialEnd"]
    assert statuses == [m["DialStatus"] for m in cap.messages if isinstance(m, Event) and m.name == "DialEnd"]


async def test_survey_after_agent_hangup() -> None:
    cap, got = await run_capture("ami-survey", agi_capture="agi-survey", settle=1.5)
    assert_same_responses(cap, got)
    assert_keys_conform(got)
    order = {"DialBegin", "DialEnd", "AGIExecStart", "AGIExecEnd", "DTMFBegin", "DTMFEnd", "BridgeEnter"}
    assert names_in(got, order) == names_in(cap.messages, order)
    assert app_sequence(got, "Local/8400@survey-in") == app_sequence(cap.messages, "Local/8400@survey-in")


async def test_originate_errors() -> None:
    cap, got = await run_capture("ami-originate-errors", dialplan="extensions-scenarios.conf.used", settle=1.0)
    assert_same_responses(cap, got)
    assert_keys_conform(got, {"OriginateResponse"})
    ors = [(m["Response"], m["Reason"]) for m in got if isinstance(m, Event) and m.name == "OriginateResponse"]
    want = [(m["Response"], m["Reason"]) for m in cap.messages
            if isinstance(m, Event) and m.name == "OriginateResponse"]
    assert ors == want


@pytest.mark.parametrize("name,order", [
    ("ami-transfer-redirect", {"DialBegin", "DialEnd", "BlindTransfer", "AttendedTransfer"}),
    ("ami-transfer-blind", {"BlindTransfer"}),
    ("ami-hold-and-record", {"MixMonitorStart", "MixMonitorStop", "MusicOnHoldStart", "MusicOnHoldStop"}),
    ("ami-bridge-action", {"BridgeCreate", "BridgeEnter", "MusicOnHoldStop", "BridgeLeave", "BridgeDestroy"}),
    ("ami-chanspy-listen", {"ChanSpyStart", "ChanSpyStop", "AgentConnect"}),
])
async def test_call_control(name: str, order: set[str]) -> None:
    cap, got = await run_capture(name, dialplan="extensions-scenarios2.conf.used", settle=1.0)
    assert_same_responses(cap, got)
    assert_keys_conform(got)
    assert names_in(got, order) == names_in(cap.messages, order)


# ------------------------------------------------------------------------------ every scenario

S1, S2 = "extensions-scenarios.conf.used", "extensions-scenarios2.conf.used"

# name -> (dialplan, FastAGI captures, events whose global order is deterministic in Asterisk)
SCENARIOS: dict[str, tuple[str, tuple[str, ...], set[str]]] = {
    "ami-queue-abandon": (S1, (), {"QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "LocalBridge"}),
    "ami-ring-no-answer": (S1, (), {"QueueCallerJoin", "AgentCalled", "AgentRingNoAnswer", "QueueCallerLeave",
                                    "AgentConnect", "AgentComplete", "BridgeCreate", "BridgeDestroy"}),
    "ami-queue-admin": (S1, (), {"QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete",
                                 "QueueSummary", "QueueSummaryComplete"}),
    "ami-originate-errors": (S1, (), {"OriginateResponse"}),
    "ami-dial-return": (S2, ("agi-dial-return",), {"DialBegin", "DialState", "DialEnd", "AGIExecStart",
                                                   "AGIExecEnd", "BridgeEnter", "BridgeLeave"}),
    "ami-survey": (S2, ("agi-survey",), {"DialBegin", "DialEnd", "AGIExecStart", "AGIExecEnd", "DTMFBegin",
                                         "DTMFEnd", "BridgeEnter"}),
    "ami-transfer-redirect": (S2, (), {"DialBegin", "DialEnd", "BlindTransfer", "AttendedTransfer"}),
    "ami-transfer-blind": (S2, (), {"BlindTransfer", "BridgeCreate", "DialBegin", "DialEnd"}),
    "ami-transfer-atxfer": (S2, (), {"DTMFEnd", "Hold", "Unhold", "MusicOnHoldStart", "MusicOnHoldStop", "DialBegin",
                                     "DialEnd", "BridgeCreate", "BridgeMerge", "AttendedTransfer", "BridgeDestroy",
                                     "LocalOptimizationBegin", "LocalOptimizationEnd"}),
    "ami-hold-and-record": (S2, (), {"MixMonitorStart", "MixMonitorStop", "MusicOnHoldStart", "MusicOnHoldStop"}),
    "ami-bridge-action": (S2, (), {"BridgeCreate", "BridgeEnter", "MusicOnHoldStop", "BridgeLeave",
                                   "BridgeDestroy"}),
    "ami-chanspy-listen": (S2, (), {"ChanSpyStart", "ChanSpyStop", "AgentConnect"}),
    "ami-chanspy-whisper": (S2, (), {"ChanSpyStart", "ChanSpyStop", "AgentConnect"}),
    "ami-chanspy-barge": (S2, (), {"ChanSpyStart", "ChanSpyStop", "AgentConnect"}),
    "ami-park-retrieve": (S2, (), {"ParkedCall", "UnParkedCall", "ParkedCallGiveUp", "Parkinglot",
                                   "ParkinglotsComplete", "ParkedCallsComplete", "BridgeCreate"}),
    "ami-agi-edge": (S2, ("agi-edge", "agi-badarg"), {"AGIExecStart", "AGIExecEnd", "Hangup"}),
    "ami-shutdown-cli-with-call": (S2, (), {"OriginateResponse", "SoftHangupRequest", "HangupRequest", "Hangup",
                                            "Shutdown"}),
    "ami-edge": (S2, (), {"UserEvent", "FullyBooted", "SuccessfulAuth", "StatusComplete",
                          "CoreShowChannelsComplete", "RequestBadFormat"}),
}

# Events left out of the per-channel sequences: VarSet (Asterisk sets many internal variables,
# e.g. QUEUEPOSITION, BRIDGEPVTCALLID, that the model does not), NewCallerid/NewConnectedLine
# (connected-line updates are only approximated) and OriginateResponse (its place relative to
# the channel's Newstate/Newexten varies between runs of the same Asterisk: ami-agi-edge.txt has it
# before DialBegin for one call and after DialEnd for the next).
PER_CHANNEL_SKIP = {"VarSet", "NewCallerid", "NewConnectedLine", "OriginateResponse"}

# Channel halves whose event sequence is still knowingly different (see docs/asterisk.md).
# ami-edge: the Status list item for ;2 comes between its Answer and its Wait in the capture.
# Answer() waits up to 500 ms for a first voice frame (a Local channel sends none), and the
# Status was sent 0.5 s after the Originate: a race in Asterisk itself. Modelling the wait puts
# ami-queue-admin and ami-hold-and-record, which race the other way, out of step instead.
KNOWN_CHANNEL_DIFFS: dict[str, set[tuple[str, str]]] = {
    "ami-edge": {("Local/2001@agents", ";2")},
}


# Responses that knowingly differ (none left: the attended transfer keeps the caller's channel).
KNOWN_RESPONSE_DIFFS: dict[str, tuple[str, ...]] = {}


def per_channel(msgs: list) -> dict[tuple[str, str, int], list[str]]:
    """Event names per channel (by Uniqueid), the channel named by prefix, half and ordinal."""
    uid_key: dict[str, tuple[str, str, int]] = {}
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for m in msgs:
        if isinstance(m, Event) and m.name == "Newchannel":
            k = prefix_of(m["Channel"])
            uid_key[m["Uniqueid"]] = (k[0], k[1], seen[k])
            seen[k] += 1
    out: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for m in msgs:
        if isinstance(m, Event) and m.name not in PER_CHANNEL_SKIP and m.get("Uniqueid") in uid_key:
            out[uid_key[m["Uniqueid"]]].append(m.name)
    return dict(out)


_RUNS: dict[str, tuple[Capture, list, list[AgiTranscript]]] = {}


async def run_scenario(name: str) -> tuple[Capture, list, list[AgiTranscript]]:
    dialplan, agi, _ = SCENARIOS[name]
    transcripts: list[AgiTranscript] = []
    cap, got = await run_capture(name, dialplan=dialplan, agi_capture=agi, settle=1.0, agi_out=transcripts)
    return cap, got, transcripts


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_conforms(name: str) -> None:
    """Every captured scenario: responses and error texts, every event's key list, the global
    order of the events Asterisk emits deterministically, and per channel half the full ordered
    sequence of event names (minus PER_CHANNEL_SKIP) and of dialplan applications."""
    cap, got, _ = await run_scenario(name)
    assert_same_responses(cap, got, skip=KNOWN_RESPONSE_DIFFS.get(name, ()))
    assert_keys_conform(got)
    order = SCENARIOS[name][2]
    assert names_in(got, order) == names_in(cap.messages, order), name
    want, have = per_channel(cap.messages), per_channel(got)
    assert set(have) == set(want), f"{name}: channels"
    known = KNOWN_CHANNEL_DIFFS.get(name, set())
    for key, seq in want.items():
        if key[:2] in known:
            continue
        assert have[key] == seq, f"{name}: events of {key}"
    for pre in {k[0] for k in want}:
        cap_apps, sim_apps = app_sequence(cap.messages, pre + "-"), app_sequence(got, pre + "-")
        for half in set(cap_apps) | set(sim_apps):
            if (pre, half) not in known:
                assert sim_apps.get(half) == cap_apps.get(half), f"{name}: apps of {pre}{half}"


@pytest.mark.parametrize("name", sorted(KNOWN_CHANNEL_DIFFS))
async def test_known_channel_diffs_are_still_real(name: str) -> None:
    """The allowance list must not go stale: each listed channel half really still differs."""
    cap, got, _ = await run_scenario(name)
    want, have = per_channel(cap.messages), per_channel(got)
    for pre, half in KNOWN_CHANNEL_DIFFS[name]:
        keys = [k for k in want if k[:2] == (pre, half)]
        assert keys and any(have.get(k) != want[k] for k in keys), f"{name}: {pre}{half} now conforms"
