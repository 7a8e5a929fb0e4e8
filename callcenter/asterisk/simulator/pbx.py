# ruff: noqa: E501
"""The simulator's model of a PBX: channels (both halves of Local channels), bridges, queues,
device states and a dialplan interpreter, emitting AMI events in Asterisk 22's formats.

Nothing here replays capture bytes: every event is built from the model's state with the header
layouts observed in ``asterisk-captures`` (see ``events.py``-style helpers below).  Each channel
running dialplan is an asyncio task; every delay goes through the injected clock.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.asterisk.ami import Event, make_event
from callcenter.asterisk.simulator.clock import ScaledClock
from callcenter.asterisk.simulator.dialplan import Dialplan, split_args, substitute, truthy

log = logging.getLogger(__name__)

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
# Newexten reports an application by its registered name, whatever the dialplan's spelling
APP_NAMES = {n.lower(): n for n in (
    "AGI", "Answer", "ChanSpy", "ConfBridge", "Dial", "Goto", "GotoIf", "Hangup", "MixMonitor",
    "MusicOnHold", "NoOp", "ParkedCall", "Playback", "PlayTones", "Queue", "Ringing", "SendDTMF", "Set",
    "StartMusicOnHold", "StopMusicOnHold", "Verbose", "Wait")}
DEVICE_STATUS = {"UNKNOWN": 0, "NOT_INUSE": 1, "INUSE": 2, "BUSY": 3, "INVALID": 4,
                 "UNAVAILABLE": 5, "RINGING": 6, "RINGINUSE": 7, "ONHOLD": 8}
CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user responding",
             21: "Call Rejected", 26: "Answered elsewhere", 127: "Interworking, unspecified"}
DIAL_RESET = ["DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME", "ANSWEREDTIME_MS",
              "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS"]


# --------------------------------------------------------------------------------- control flow


class ChannelGone(Exception):
    """The channel hung up: its dialplan stops."""


class Redirected(Exception):
    def __init__(self, context: str, exten: str, priority: int) -> None:
        super().__init__(context, exten, priority)
        self.target = (context, exten, priority)


class BridgedAway(Exception):
    """The AMI Bridge action took the channel out of its application."""


# --------------------------------------------------------------------------------- behaviours


@dataclass
class Behaviour:
    """How a simulated endpoint (an agent's phone, a caller) behaves.

    ``answer_after`` None: never answers (rings until the caller gives up).  ``busy``: rejects
    with BUSY.  ``talk_time`` None: stays until the other side hangs up.  ``hangup_after``: the
    endpoint hangs up this many seconds after it was created, whatever it is doing (a caller
    hanging up mid-IVR or abandoning a queue).  ``digits``: one string per prompt (GET DATA /
    WAIT FOR DIGIT / STREAM FILE with escape digits); ``dtmf_delay`` before each is pressed.
    """

    answer_after: float | None = 1.0
    talk_time: float | None = 5.0
    busy: bool = False
    hangup_after: float | None = None
    digits: list[str] = field(default_factory=list)
    dtmf_delay: float = 0.5
    manual: bool = False  # a soft-phone: rings until Pbx.answer_device / stays up until hangup_device
    machine: bool = False  # an answering machine: AMD() says MACHINE (simulator/outbound.py)


@dataclass
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    state: int
    context: str
    exten: str
    priority: int = 1
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    con_num: str = "<unknown>"
    con_name: str = "<unknown>"
    language: str = "en"
    accountcode: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    app: str = ""
    appdata: str = ""
    created: float = 0.0
    answered_at: float | None = None
    bridge: Bridge | None = None
    other: Channel | None = None  # the other half of a Local channel
    half: int = 0  # 1 or 2 for Local halves
    device: str = ""  # Local/1001@agents, PJSIP/1001
    behaviour: Behaviour | None = None
    hungup: bool = False
    cause: int = 16
    pbx_task: asyncio.Task[None] | None = None
    interrupt: asyncio.Future[BaseException] | None = None
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    bridge_left: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    digits: deque[str] = field(default_factory=deque)
    moh: str | None = None
    recording: str | None = None
    spying: tuple[Channel, str] | None = None
    agi: Any = None  # the running AGI session (for HANGUP)
    dial_peer: Channel | None = None  # the caller that dialed this channel (no pbx of its own)
    queued_in: str | None = None
    on_hangup: list[Callable[[], None]] = field(default_factory=list)
    answer_request: asyncio.Event | None = None  # set by a soft-phone's Answer button
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set (and renewed) on state/hangup
    hangup_requested: bool = False  # a soft hangup is pending (the channel still runs, e.g. its AGI)
    soft_hangup_sent: bool = False  # SoftHangupRequest already emitted
    atxfer: bool = False  # the transferer of an attended transfer in progress
    peer_told: bool = False  # HangupRequest already emitted for this half (by an attended transfer)
    goto_reported: bool = False  # a redirect already reported the new location (Newexten, old app)

    @property
    def up(self) -> bool:
        return self.state == 6

    def snap(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [
            (p + "Channel", self.name), (p + "ChannelState", str(self.state)),
            (p + "ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (p + "CallerIDNum", self.cid_num), (p + "CallerIDName", self.cid_name),
            (p + "ConnectedLineNum", self.con_num), (p + "ConnectedLineName", self.con_name),
            (p + "Language", self.language), (p + "AccountCode", self.accountcode),
            (p + "Context", self.context), (p + "Exten", self.exten), (p + "Priority", str(self.priority)),
            (p + "Uniqueid", self.uniqueid), (p + "Linkedid", self.linkedid),
        ]

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


@dataclass
class Bridge:
    uniqueid: str
    type: str = "basic"
    technology: str = "simple_bridge"
    channels: list[Channel] = field(default_factory=list)
    keep_alone: bool = False  # a lone channel stays (an attended transfer's bridges)
    creator: str = "<unknown>"
    name: str = "<unknown>"

    def fields(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [(p + "BridgeUniqueid", self.uniqueid), (p + "BridgeType", self.type),
                (p + "BridgeTechnology", self.technology), (p + "BridgeCreator", self.creator),
                (p + "BridgeName", self.name), (p + "BridgeNumChannels", str(len(self.channels))),
                (p + "BridgeVideoSourceMode", "none")]


@dataclass
class Member:
    interface: str
    name: str
    state_interface: str
    penalty: int = 0
    paused: bool = False
    reason: str = ""
    dynamic: bool = True
    calls: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: bool = False
    ringing: bool = False


@dataclass
class QueueEntry:
    channel: Channel
    joined: float
    position: int
    original_position: int
    done: asyncio.Future[str]


@dataclass
class Queue:
    name: str
    strategy: str = "ringall"
    timeout: int = 15
    retry: int = 5
    wrapuptime: int = 0
    musicclass: str = "default"
    ringinuse: bool = False
    members: dict[str, Member] = field(default_factory=dict)
    entries: list[QueueEntry] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0
    talktime: int = 0
    rr_last: int = -1


def parse_queues_conf(text: str) -> dict[str, Queue]:
    """Read queue definitions (strategy, timeout, retry, static members) from queues.conf."""
    queues: dict[str, Queue] = {}
    cur: Queue | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            name = line[1:line.index("]")]
            cur = None if name == "general" else queues.setdefault(name, Queue(name))
            continue
        if cur is None or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().rstrip(">").strip()
        value = value.lstrip(">").strip()
        if key == "member":
            parts = [p.strip() for p in value.split(",")]
            iface = parts[0]
            cur.members[iface] = Member(
                iface, parts[2] if len(parts) > 2 and parts[2] else iface,
                parts[3] if len(parts) > 3 and parts[3] else iface,
                int(parts[1] or 0) if len(parts) > 1 else 0, dynamic=False)
        elif key == "strategy":
            cur.strategy = value
        elif key == "timeout":
            cur.timeout = int(value)
        elif key == "retry":
            cur.retry = int(value)
        elif key == "wrapuptime":
            cur.wrapuptime = int(value)
        elif key == "musicclass":
            cur.musicclass = value
        elif key == "ringinuse":
            cur.ringinuse = value.lower() in ("yes", "true", "1")
    return queues


# --------------------------------------------------------------------------------- the PBX


class Pbx:
    """The model.  ``listeners`` get every event (the AMI server fans them out)."""

    def write_placeholder(self, file: str) -> None:
        if self.recordings_dir is None:
            return
        path = Path(file)
        base = self.recordings_dir.resolve()
        if not path.resolve().is_relative_to(base) or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00"
                         b"\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")

    def __init__(
        self, dialplan: Dialplan, *, clock: ScaledClock | None = None,
        queues: dict[str, Queue] | None = None, agi_target: str | None = None,
        behaviours: dict[str, Behaviour] | None = None, seed: int = 0,
    ) -> None:
        self.dialplan = dialplan
        self.clock = clock or ScaledClock()
        self.queues = queues or {}
        self.globals = dict(dialplan.globals)
        if agi_target is not None:
            self.globals["CC_AGI"] = agi_target
        self.agi_target = agi_target
        self.behaviours = behaviours or {}
        self.default_behaviour = Behaviour()
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.device_states: dict[str, str] = {}
        self.custom_states: dict[str, str] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.rng = random.Random(seed)
        self._seq = itertools.count(1)
        self._uid = itertools.count(1)
        self._epoch = int(self.clock.wall())
        self.tasks: set[asyncio.Task[Any]] = set()
        self.history: list[Event] = []
        self.keep_history = False
        self.agi_runner: Callable[[Pbx, Channel, str, list[str]], Any] | None = None
        # MixMonitor files: the simulator has no audio, but it writes a small placeholder WAV
        # (header only) for a File under this directory, so that playback can be tested
        self.recordings_dir: Path | None = None
        self.started = self.clock.wall()
        self.parked: dict[int, tuple[Channel, float, int]] = {}
        self.park_origin: dict[int, Bridge] = {}  # the bridge a parker (TimeoutChannel) stays in
        self.parking_bridge: Bridge | None = None  # the lot's holding bridge, kept once created
        self.conferences: dict[str, Any] = {}  # ConfBridge conferences by name (confbridge.py)
        self.outbound: Any = None  # scripted outcomes of calls out through the trunk (outbound.py)
        self._register_parking_context()

    def _register_parking_context(self) -> None:
        """res_parking adds ``[parkedcalls]`` with ``exten => 701..720,1,ParkedCall(default,N)``
        (the lot of res_parking-scenarios2.conf.used: parkpos 701-720, context parkedcalls)."""
        from callcenter.asterisk.simulator.dialplan import Context, Extension, Step
        ctx = self.dialplan.contexts.setdefault("parkedcalls", Context("parkedcalls"))
        have = {e.pattern for e in ctx.extensions}
        for space in range(701, 721):
            if str(space) not in have:
                ctx.extensions.append(Extension(str(space), {1: Step(1, None, "ParkedCall", f"default,{space}")}))

    def move_to_bridge(self, ch: Channel, br: Bridge) -> None:
        """Move ``ch`` into ``br`` (BridgeLeave, BridgeEnter) without ending the application that
        holds it in a bridge (a parked Dial goes on when the call is retrieved)."""
        old = ch.bridge
        if old is not None:
            old.channels.remove(ch)
            ch.bridge = None
            self.emit("BridgeLeave", [*old.fields(), *ch.snap()])
        br.channels.append(ch)
        ch.bridge = br
        self.emit("BridgeEnter", [*br.fields(), *ch.snap()])

    # ---- events ---------------------------------------------------------------------------

    def emit(self, name: str, fields: list[tuple[str, str]], privilege: str | None = "call,all",
             action_id: str | None = None) -> Event:
        hdrs: list[tuple[str, str]] = []
        if privilege is not None:
            hdrs.append(("Privilege", privilege))
        hdrs.extend(fields)
        ev = make_event(name, hdrs, action_id=action_id)
        if self.keep_history:
            self.history.append(ev)
        for listener in list(self.listeners):
            try:
                listener(ev)
            except Exception:  # a broken listener must not break the model
                log.exception("event listener failed")
        return ev

    def chan_event(self, name: str, ch: Channel, *extra: tuple[str, str], privilege: str = "call,all") -> None:
        self.emit(name, [*ch.snap(), *extra], privilege)

    # ---- helpers --------------------------------------------------------------------------

    def new_uniqueid(self) -> str:
        return f"{self._epoch}.{next(self._uid)}"

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def behaviour_for(self, device: str) -> Behaviour:
        if device in self.behaviours:
            return self.behaviours[device]
        num = device.split("/", 1)[-1].split("@", 1)[0]
        if num not in self.behaviours and self.outbound is not None and device.endswith(
                self.outbound.trunk_suffix):
            return self.outbound.draw()  # a campaign's call out (simulator/outbound.py)
        return self.behaviours.get(num, self.default_behaviour)

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def lookup(self, ch: Channel) -> Callable[[str], str]:
        def look(name: str) -> str:
            if name in ch.vars:
                return ch.vars[name]
            up = name.upper()
            if up == "CALLERID(NUM)":
                return ch.cid_num if ch.cid_num != "<unknown>" else ""
            if up == "CALLERID(NAME)":
                return ch.cid_name if ch.cid_name != "<unknown>" else ""
            if up == "EXTEN":
                return ch.exten
            if up == "CONTEXT":
                return ch.context
            if up == "CHANNEL":
                return ch.name
            if up == "UNIQUEID":
                return ch.uniqueid
            if up == "PRIORITY":
                return str(ch.priority)
            if up == "HANGUPCAUSE":
                return "0"  # no hangup cause yet (agi-dial-return: NOANSWER|||0)
            if name in self.globals:
                return self.globals[name]
            return ""
        return look

    def sub(self, ch: Channel, text: str) -> str:
        return substitute(text, self.lookup(ch))

    def set_var(self, ch: Channel, name: str, value: str, *, event: bool = True) -> None:
        if name.startswith("__"):
            name = name[2:]
        elif name.startswith("_"):
            name = name[1:]
        ch.vars[name] = value
        if event:
            self.chan_event("VarSet", ch, ("Variable", name), ("Value", value), privilege="dialplan,all")

    # ---- channels -------------------------------------------------------------------------

    def _new_channel(self, name: str, state: int, context: str, exten: str, linkedid: str | None,
                     device: str = "", priority: int = 1) -> Channel:
        uid = self.new_uniqueid()
        ch = Channel(name=name, uniqueid=uid, linkedid=linkedid or uid, state=state, context=context,
                     exten=exten, priority=priority, created=self.clock.now(), device=device)
        self.channels[name] = ch
        return ch

    def new_local(self, target: str, linkedid: str | None = None) -> tuple[Channel, Channel]:
        """Both halves of ``Local/exten@context`` (Newchannel ;1 Down, ;2 Ring)."""
        body = target.split("/", 1)[1]
        exten, _, context = body.partition("@")
        context = (context or "default").split("/")[0]
        n = f"{next(self._seq):08x}"
        one = self._new_channel(f"Local/{exten}@{context}-{n};1", 0, context, exten, linkedid,
                                f"Local/{exten}@{context}")
        two = self._new_channel(f"Local/{exten}@{context}-{n};2", 4, context, exten, one.linkedid,
                                f"Local/{exten}@{context}")
        one.half, two.half = 1, 2
        one.other, two.other = two, one
        self.chan_event("Newchannel", one)
        self.chan_event("Newchannel", two)
        return one, two

    def new_simple(self, tech_resource: str, *, state: int, context: str, exten: str,
                   linkedid: str | None = None) -> Channel:
        n = f"{next(self._seq):08x}"
        ch = self._new_channel(f"{tech_resource}-{n}", state, context, exten, linkedid, tech_resource)
        self.chan_event("Newchannel", ch)
        return ch

    def set_callerid(self, ch: Channel, num: str, name: str) -> None:
        ch.cid_num, ch.cid_name = num or "<unknown>", name or "<unknown>"
        self.chan_event("NewCallerid", ch, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))

    def set_connected(self, ch: Channel, num: str, name: str) -> None:
        ch.con_num, ch.con_name = num or "<unknown>", name or "<unknown>"
        self.chan_event("NewConnectedLine", ch)

    def local_bridge(self, one: Channel, two: Channel) -> None:
        self.emit("LocalBridge", [*one.snap("LocalOne"), *two.snap("LocalTwo"), ("Context", two.context),
                                  ("Exten", two.exten), ("LocalOptimization", "Yes")])

    def new_state(self, ch: Channel, state: int) -> None:
        if ch.state == state or ch.hungup:
            return
        ch.state = state
        self.chan_event("Newstate", ch)
        if state == 6:
            ch.answered_at = self.clock.now()
            ch.answered.set()
        self.update_device(ch.device)
        self._changed(ch)

    @staticmethod
    def _changed(ch: Channel) -> None:
        """Wake whoever waits for this channel to change (no polling)."""
        ev, ch.changed = ch.changed, asyncio.Event()
        ev.set()

    def answer(self, ch: Channel) -> None:
        """Answer ``ch``; for the ;2 half of a Local channel, ;1 goes up too (as in the captures)."""
        if ch.up:
            return
        self.new_state(ch, 6)
        if ch.half == 2 and ch.other is not None and not ch.other.hungup:
            self.new_state(ch.other, 6)

    def newexten(self, ch: Channel, app: str, data: str) -> None:
        ch.app, ch.appdata = app, data
        self.chan_event("Newexten", ch, ("Extension", ch.exten), ("Application", app), ("AppData", data),
                        privilege="dialplan,all")

    # ---- device states --------------------------------------------------------------------

    def compute_device(self, device: str) -> str:
        if device.startswith("Custom:"):
            return self.custom_states.get(device, "UNKNOWN")
        chans = [c for c in self.channels.values() if c.device == device and not c.hungup]
        if not chans:
            return "NOT_INUSE"
        if any(c.up for c in chans):
            return "INUSE"
        if any(c.state == 5 or (c.state == 0 and c.dial_peer is not None) for c in chans):
            return "RINGING"
        return "INUSE"

    def update_device(self, device: str, force: str | None = None) -> None:
        if not device:
            return
        state = force or self.compute_device(device)
        old = self.device_states.get(device)
        if old == state and force is None:
            return
        self.device_states[device] = state
        self.emit("DeviceStateChange", [("Device", device), ("State", state)])
        for q in self.queues.values():
            for m in q.members.values():
                if m.state_interface == device:
                    self.member_event("QueueMemberStatus", q, m)

    def device_state(self, device: str) -> str:
        return self.device_states.get(device) or self.compute_device(device)

    def member_status(self, m: Member) -> int:
        return DEVICE_STATUS.get(self.device_state(m.state_interface), 0)

    # ---- hangup ---------------------------------------------------------------------------

    def request_hangup(self, ch: Channel, cause: int = 16, *, soft: bool = True) -> None:
        """Ask ``ch`` to hang up: a channel running dialplan stops it, others hang up now."""
        if ch.hungup:
            return
        ch.cause = cause
        if ch.agi is not None and ch.pbx_task is not None and not ch.pbx_task.done():
            # an AGI keeps running on a dead channel (fact 11): it is told (HANGUP, then 511 for
            # live-only commands) and the channel goes away only when the AGI ends
            ch.hangup_requested = True
            ch.agi.channel_hungup()
            if ch.interrupt is not None and not ch.interrupt.done():
                ch.interrupt.set_result(ChannelGone())
            return
        if ch.pbx_task is not None and not ch.pbx_task.done() and ch.interrupt is not None:
            ch.hangup_requested = True
            if not ch.interrupt.done():
                ch.interrupt.set_result(ChannelGone())
            return
        self.hangup(ch, cause)

    def hangup(self, ch: Channel, cause: int | None = None, *, _from_other: bool = False) -> None:
        if ch.hungup:
            return
        cause = ch.cause if cause is None else cause
        for cb in ch.on_hangup:
            cb()
        ch.on_hangup.clear()
        ch.hungup = True
        if ch.interrupt is not None and not ch.interrupt.done():
            ch.interrupt.set_result(ChannelGone())
        if ch.agi is not None:
            ch.agi.channel_hungup()
        if ch.spying is not None:
            self.stop_spy(ch)
        for spyer in [c for c in self.channels.values() if c.spying and c.spying[0] is ch]:
            self.stop_spy(spyer)
            self.request_hangup(spyer)
        if ch.queued_in is not None:
            self.queue_abandon(ch)
        other = ch.other if ch.other is not None and not ch.other.hungup else None
        if other is not None and not other.peer_told:
            self.chan_event("HangupRequest", other, ("Cause", str(cause)))
        if ch.bridge is not None:
            self.leave_bridge(ch, peer_hangup=True)
            self.chan_event("Hangup", ch, ("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")))
            self._hangup_done(ch)
        else:
            self.chan_event("Hangup", ch, ("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")))
            self._hangup_done(ch)
        if other is not None:
            other.cause = cause
            self.request_hangup(other, cause)

    def _hangup_done(self, ch: Channel) -> None:
        self.channels.pop(ch.name, None)
        ch.gone.set()
        self._changed(ch)
        ch.answered.set()
        self.update_device(ch.device)

    # ---- bridges --------------------------------------------------------------------------

    def create_bridge(self, type_: str = "basic", technology: str = "simple_bridge", *,
                      creator: str = "<unknown>", name: str = "<unknown>") -> Bridge:
        br = Bridge(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), type_, technology,
                    creator=creator, name=name)
        self.bridges[br.uniqueid] = br
        self.emit("BridgeCreate", br.fields())
        return br

    def enter_bridge(self, br: Bridge, ch: Channel) -> None:
        if ch.bridge is not None:
            self.leave_bridge(ch)
        ch.bridge_left.clear()
        br.channels.append(ch)
        ch.bridge = br
        self.emit("BridgeEnter", [*br.fields(), *ch.snap()])

    def leave_bridge(self, ch: Channel, *, peer_hangup: bool = False) -> None:
        br = ch.bridge
        if br is None:
            return
        if br.type == "basic":
            for c in br.channels:
                if c.vars.get("BRIDGEPEER") and not c.hungup:
                    self.set_var(c, "BRIDGEPEER", "")
        br.channels.remove(ch)
        ch.bridge = None
        self.emit("BridgeLeave", [*br.fields(), *ch.snap()])
        ch.bridge_left.set()
        if br.type == "basic" and len(br.channels) == 1 and not br.keep_alone:
            rest = br.channels[0]
            self.leave_bridge(rest)
            self._after_bridge(rest)
        if not br.channels and br.uniqueid in self.bridges:
            del self.bridges[br.uniqueid]
            self.emit("BridgeDestroy", br.fields())

    def _after_bridge(self, ch: Channel) -> None:
        """A channel left alone after its peer left: a dialed channel (no dialplan) hangs up."""
        if ch.hungup:
            return
        if ch.pbx_task is None or ch.pbx_task.done():
            self.request_hangup(ch, ch.cause)

    def bridge_pair(self, a: Channel, b: Channel, br: Bridge | None = None) -> Bridge:
        br = br or self.create_bridge()
        self.enter_bridge(br, b)
        self.enter_bridge(br, a)
        self.set_var(b, "BRIDGEPEER", a.name)
        self.set_var(a, "BRIDGEPEER", b.name)
        return br

    # ---- waiting --------------------------------------------------------------------------

    async def wait(self, ch: Channel, seconds: float | None = None,
                   until: asyncio.Future[Any] | asyncio.Event | None = None) -> bool:
        """Wait ``seconds`` (or for ``until``) unless the channel is interrupted (hangup,
        redirect, bridge), which raises.  Returns True when ``until`` happened first."""
        if ch.hungup or ch.hangup_requested:
            raise ChannelGone()
        if ch.interrupt is None or ch.interrupt.done():
            ch.interrupt = asyncio.get_running_loop().create_future()
        waits: list[asyncio.Future[Any]] = [ch.interrupt]
        helper: asyncio.Task[Any] | None = None
        if until is not None:
            helper = asyncio.ensure_future(until.wait() if isinstance(until, asyncio.Event) else until)
            waits.append(helper)
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds)) if seconds is not None else None
        if sleeper is not None:
            waits.append(sleeper)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (helper, sleeper):
                if t is not None and not t.done() and t is not until:
                    t.cancel()
        if ch.interrupt in done:
            exc = ch.interrupt.result()
            ch.interrupt = None
            raise exc
        return helper is not None and helper in done

    # ---- dialplan -------------------------------------------------------------------------

    def start_pbx(self, ch: Channel, context: str | None = None, exten: str | None = None,
                  priority: int = 1) -> None:
        if context is not None:
            ch.context = context
        if exten is not None:
            ch.exten = exten
        ch.priority = priority
        ch.interrupt = None
        ch.goto_reported = False
        ch.pbx_task = self.spawn(self._run_pbx(ch))

    async def _run_pbx(self, ch: Channel) -> None:
        try:
            while not ch.hungup:
                ext = self.dialplan.find(ch.context, ch.exten)
                step = ext.steps.get(ch.priority) if ext is not None else None
                if step is None:
                    break
                data = self.sub(ch, step.data)
                if ch.goto_reported:  # the location did not change since the redirect's Newexten
                    ch.goto_reported = False
                    ch.app, ch.appdata = APP_NAMES.get(step.app.lower(), step.app), data
                else:
                    self.newexten(ch, APP_NAMES.get(step.app.lower(), step.app), data)
                try:
                    jump = await self.run_app(ch, step.app, data)
                except Redirected as r:
                    if ch.bridge is not None:
                        self.leave_bridge(ch)
                    ch.context, ch.exten, ch.priority = r.target
                    continue
                except BridgedAway:
                    try:
                        await self.wait(ch, until=ch.bridge_left)
                    except ChannelGone:
                        # hung up inside the AMI Bridge: the bridge, not a PBX, owns the channel,
                        # so there is no SoftHangupRequest (ami-bridge-action)
                        ch.soft_hangup_sent = True
                        raise
                    except Redirected as r:  # redirected out of the AMI Bridge (hold again, consult)
                        if ch.bridge is not None:
                            self.leave_bridge(ch)
                        ch.context, ch.exten, ch.priority = r.target
                        continue
                    if ch.hungup:
                        break
                    ch.priority += 1
                    continue
                for _ in range(8):  # let the channels woken by this step act first, as Asterisk's threads do
                    await asyncio.sleep(0)
                if jump is None:
                    ch.priority += 1
                elif jump == "stop":
                    break
                else:
                    ctx, ex, pr = jump
                    ch.context, ch.exten = ctx, ex
                    ch.priority = self._resolve_priority(ctx, ex, pr)
        except ChannelGone:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simulated dialplan failed on %s", ch.name)
        finally:
            if not ch.hungup:
                self._pbx_cleanup(ch)
                if (ch.up or ch.hangup_requested) and not ch.soft_hangup_sent:
                    ch.soft_hangup_sent = True
                    self.chan_event("SoftHangupRequest", ch, ("Cause", "16"))  # 16 in every capture
                self._run_h(ch)
                self.hangup(ch)

    def _pbx_cleanup(self, ch: Channel) -> None:
        """What the running application undoes before the PBX loop reports SoftHangupRequest:
        a parked call gives up, music stops, the queue entry is abandoned, the bridge is left
        (ami-queue-abandon 646-903, ami-transfer-redirect, ami-park-retrieve 3979)."""
        for space, item in list(self.parked.items()):
            if item[0] is ch:
                del self.parked[space]
                self.park_origin.pop(space, None)
                self.emit("ParkedCallGiveUp", [*ch.snap("Parkee"), *self._park_tail(space, item)])
        self.moh_stop(ch)
        if ch.queued_in is not None:
            self.queue_abandon(ch)
        if ch.bridge is not None:
            self.leave_bridge(ch, peer_hangup=True)

    def _run_h(self, ch: Channel) -> None:
        """The ``h`` extension of the channel's context runs before the channel goes away
        (ami-agi-edge: SoftHangupRequest, Newexten NoOp of ``h``, Hangup).  Only applications
        that do not wait are run there."""
        ext = self.dialplan.find(ch.context, "h")
        if ext is None or ext.pattern != "h":
            return
        ch.exten, ch.priority = "h", 1
        while ch.priority in ext.steps and not ch.hungup:
            step = ext.steps[ch.priority]
            data = self.sub(ch, step.data)
            self.newexten(ch, APP_NAMES.get(step.app.lower(), step.app), data)
            if step.app.lower() in ("noop", "set", "verbose"):
                fn = getattr(self, "app_" + step.app.lower())
                coro = fn(ch, data)
                with contextlib.suppress(StopIteration):
                    coro.send(None)
            elif step.app.lower() == "hangup":
                break
            ch.priority += 1

    def _resolve_priority(self, ctx: str, ex: str, pr: str | int) -> int:
        if isinstance(pr, int):
            return pr
        if pr.isdigit():
            return int(pr)
        ext = self.dialplan.find(ctx, ex)
        if ext is None or pr not in ext.labels:
            raise ChannelGone()
        return ext.labels[pr]

    def parse_goto(self, ch: Channel, target: str) -> tuple[str, str, str]:
        parts = [p.strip() for p in target.split(",")]
        if len(parts) == 1:
            return ch.context, ch.exten, parts[0]
        if len(parts) == 2:
            return ch.context, parts[0], parts[1]
        return parts[0], parts[1], parts[2]

    async def run_app(self, ch: Channel, app: str, data: str) -> Any:
        fn = getattr(self, "app_" + app.lower(), None)
        if fn is None:
            return None
        return await fn(ch, data)

    # ---- applications ---------------------------------------------------------------------

    async def app_noop(self, ch: Channel, data: str) -> None:
        return None

    app_verbose = app_noop
    app_progress = app_noop

    async def app_answer(self, ch: Channel, data: str) -> None:
        self.answer(ch)

    async def app_ringing(self, ch: Channel, data: str) -> None:
        if ch.half == 2 and ch.other is not None:
            self.new_state(ch.other, 5)

    async def app_wait(self, ch: Channel, data: str) -> None:
        await self.wait(ch, float(data or 0))

    async def app_amd(self, ch: Channel, data: str) -> None:
        """Answering machine detection: a scripted machine (simulator/outbound.py) is MACHINE,
        anyone else HUMAN, after a short analysis; sets AMDSTATUS and AMDCAUSE like app_amd."""
        await self.wait(ch, 1.5)
        machine = ch.behaviour is not None and ch.behaviour.machine
        self.set_var(ch, "AMDCAUSE", "LONGGREETING-2000-1500" if machine else "HUMAN-300-300")
        self.set_var(ch, "AMDSTATUS", "MACHINE" if machine else "HUMAN")

    async def app_userevent(self, ch: Channel, data: str) -> None:
        """UserEvent(name,Key: value,...): a UserEvent with the channel's snapshot (user class)."""
        name, *rest = data.split(",")
        extra = [(k.strip(), v.strip()) for k, _, v in (r.partition(":") for r in rest) if k.strip()]
        self.chan_event("UserEvent", ch, ("UserEvent", name.strip()), *extra, privilege="user,all")

    async def app_playtones(self, ch: Channel, data: str) -> None:
        return None

    async def app_playback(self, ch: Channel, data: str) -> None:
        await self.wait(ch, 1.0)

    async def app_hangup(self, ch: Channel, data: str) -> str:
        cause = int(data) if data.strip().isdigit() else 16
        ch.cause = cause
        ch.soft_hangup_sent = True
        self.chan_event("SoftHangupRequest", ch, ("Cause", str(cause)))
        return "stop"

    async def app_set(self, ch: Channel, data: str) -> None:
        name, _, value = data.partition("=")
        name = name.strip()
        if "(" in name:  # a dialplan function such as CONFBRIDGE(user,marked): no VarSet
            ch.vars[name] = value
            return
        self.set_var(ch, name, value)

    async def app_confbridge(self, ch: Channel, data: str) -> None:
        from callcenter.asterisk.simulator import confbridge

        await confbridge.run(self, ch, split_args(data)[0])

    async def app_goto(self, ch: Channel, data: str) -> tuple[str, str, str]:
        return self.parse_goto(ch, data)

    async def app_gotoif(self, ch: Channel, data: str) -> tuple[str, str, str] | None:
        cond, _, dests = data.partition("?")
        yes, _, no = dests.partition(":")
        target = yes if truthy(cond) else no
        if not target:
            return None
        return self.parse_goto(ch, target)

    async def app_senddtmf(self, ch: Channel, data: str) -> None:
        digits = split_args(data)[0]
        peer = self.dtmf_peer(ch)
        for d in digits:
            if peer is not None:
                self.dtmf(peer, d)
            await self.wait(ch, 0.25)

    def dtmf_peer(self, ch: Channel) -> Channel | None:
        """Who receives the DTMF ``ch`` sends: its Local other half, or its bridge peer."""
        if ch.other is not None and not ch.other.hungup:
            tgt = ch.other
            if tgt.bridge is not None:
                peers = [c for c in tgt.bridge.channels if c is not tgt]
                return peers[0] if peers else tgt
            return tgt
        if ch.bridge is not None:
            peers = [c for c in ch.bridge.channels if c is not ch]
            return peers[0] if peers else None
        return None

    def dtmf(self, ch: Channel, digit: str) -> None:
        self.chan_event("DTMFBegin", ch, ("Digit", digit), ("Direction", "Received"), privilege="dtmf,all")
        self.chan_event("DTMFEnd", ch, ("Digit", digit), ("DurationMs", "250"), ("Direction", "Received"),
                        privilege="dtmf,all")
        ch.digits.append(digit)
        if ch.agi is not None:
            ch.agi.digit_arrived()

    async def app_musiconhold(self, ch: Channel, data: str) -> None:
        args = split_args(data)
        klass = args[0] or "default"
        dur = float(args[1]) if len(args) > 1 and args[1] else None
        self.moh_start(ch, klass)
        try:
            await self.wait(ch, dur)
        finally:
            self.moh_stop(ch)

    async def app_startmusiconhold(self, ch: Channel, data: str) -> None:
        self.moh_start(ch, data or "default")

    async def app_stopmusiconhold(self, ch: Channel, data: str) -> None:
        self.moh_stop(ch)

    def moh_start(self, ch: Channel, klass: str = "default") -> None:
        if ch.moh is None and not ch.hungup:
            ch.moh = klass
            self.chan_event("MusicOnHoldStart", ch, ("Class", klass))

    def moh_stop(self, ch: Channel) -> None:
        if ch.moh is not None and not ch.hungup:
            ch.moh = None
            self.chan_event("MusicOnHoldStop", ch)

    async def app_agi(self, ch: Channel, data: str) -> None:
        args = split_args(data)
        url, script_args = args[0], args[1:]
        if self.agi_runner is None:
            self.set_var(ch, "AGISTATUS", "FAILURE")
            return
        status = await self.agi_runner(self, ch, url, script_args)
        if ch.hungup or ch.hangup_requested:
            raise ChannelGone()
        self.set_var(ch, "AGISTATUS", status)

    # ---- Dial -----------------------------------------------------------------------------

    def _new_dialed(self, caller: Channel | None, target: str, app: str) -> tuple[Channel, Channel | None]:
        """Create the outgoing channel for a dial string; returns (dialed leg, ;2 half or None)."""
        linked = caller.linkedid if caller is not None else None
        if target.startswith("Local/"):
            one, two = self.new_local(target, linked)
            dialstring = target.split("/", 1)[1]
            if caller is not None and app == "AppDial":
                self.set_var(one, "DIALEDPEERNUMBER", dialstring)
            self.newexten(one, app, "(Outgoing Line)")
            if caller is not None:
                self.set_callerid(one, caller.cid_num, caller.cid_name)
                self.set_connected(one, caller.cid_num, caller.cid_name)
                if app == "AppDial":
                    self.set_var(two, "DIALEDPEERNUMBER", dialstring)
                self.set_callerid(two, caller.cid_num, caller.cid_name)
                self.set_connected(two, caller.cid_num, caller.cid_name)
            self.local_bridge(one, two)
            one.dial_peer = caller
            return one, two
        tech, _, resource = target.partition("/")
        ch = self.new_simple(target, state=0, context="default", exten="s", linkedid=linked)
        ch.dial_peer = caller
        ch.behaviour = self.behaviour_for(target)
        if caller is not None:
            self.set_callerid(ch, caller.cid_num, caller.cid_name)
            self.set_connected(ch, caller.cid_num, caller.cid_name)
        return ch, None

    def _start_callee(self, leg: Channel, two: Channel | None) -> None:
        """Make the far end do its thing: run the Local ;2 dialplan, or the endpoint behaviour."""
        if two is not None:
            if self.dialplan.find(two.context, two.exten) is not None:
                self.start_pbx(two)
            else:
                two.behaviour = self.behaviour_for(two.device)
                self.spawn(self._endpoint(two, leg))
        else:
            self.spawn(self._endpoint(leg, leg))

    async def _endpoint(self, ch: Channel, ring_leg: Channel) -> None:
        """A phone driven by its Behaviour: ring, answer (or not), talk, hang up."""
        b = ch.behaviour or self.default_behaviour
        try:
            if b.busy:
                await self.clock.sleep(0.1)
                ch.cause = 17
                self.request_hangup(ch, 17)
                return
            self.new_state(ring_leg, 5)
            if b.manual:
                ch.answer_request = asyncio.Event()
                await self._first(ch.answer_request.wait(), ch.gone.wait())
                if not ch.hungup:
                    self.answer(ch)
                return
            if b.answer_after is None:
                await ch.gone.wait()
                return
            await self.clock.sleep(b.answer_after)
            if ch.hungup:
                return
            self.answer(ch)
            if b.talk_time is None:
                return
            await self.clock.sleep(b.talk_time)
            if not ch.hungup:
                self.chan_event("SoftHangupRequest", ch, ("Cause", "16"))
                self.hangup(ch, 16)
        except asyncio.CancelledError:
            raise

    @staticmethod
    async def _first(*aws: Any) -> None:
        tasks = [asyncio.ensure_future(a) for a in aws]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()

    def device_channels(self, number: str) -> list[Channel]:
        """Live channels of an endpoint (PJSIP/1001, or Local/1001@... without dialplan)."""
        return [c for c in self.channels.values() if not c.hungup and c.device
                and c.device.split("/", 1)[-1].split("@", 1)[0] == number]

    def answer_device(self, number: str) -> bool:
        """A soft-phone's Answer button: answer the ringing channel of that endpoint."""
        for c in self.device_channels(number):
            req = getattr(c, "answer_request", None)
            if req is not None and not c.up:
                req.set()
                return True
        return False

    def hangup_device(self, number: str) -> bool:
        """A soft-phone's Hang-up button."""
        chans = self.device_channels(number)
        for c in chans:
            self.request_hangup(c, 16)
        return bool(chans)

    def dial_fields(self, caller: Channel | None, leg: Channel) -> list[tuple[str, str]]:
        return [*(caller.snap() if caller is not None else []), *leg.snap("Dest")]

    async def app_dial(self, ch: Channel, data: str) -> None:
        args = split_args(data)
        targets = [t for t in args[0].split("&") if t]
        timeout = float(args[1]) if len(args) > 1 and args[1].strip() else None
        opts = args[2] if len(args) > 2 else ""
        for v in DIAL_RESET:
            self.set_var(ch, v, "")
        if not targets:
            self.set_var(ch, "DIALSTATUS", "CHANUNAVAIL")
            return
        started = self.clock.now()
        target = targets[0]
        leg, two = self._new_dialed(ch, target, "AppDial")
        dialstring = target.split("/", 1)[1] if target.startswith("Local/") else target.split("/", 1)[1]
        self.emit("DialBegin", [*self.dial_fields(ch, leg), ("DialString", dialstring)])
        self._start_callee(leg, two)
        status = await self._ring(ch, leg, timeout)
        if status == "ANSWER":
            self.set_var(ch, "DIALSTATUS", "ANSWER")
            self.set_var(ch, "DIALEDPEERNAME", leg.name)
            self.set_var(ch, "DIALEDPEERNUMBER", dialstring)
            self.emit("DialEnd", [*self.dial_fields(ch, leg), ("DialStatus", "ANSWER")])
            br = None
            if not ch.up:  # Dial answers its caller; a Local ;1 goes up once the bridge exists
                self.new_state(ch, 6)
                br = self.create_bridge()
                if ch.half == 2 and ch.other is not None and not ch.other.hungup:
                    self.new_state(ch.other, 6)
            if two is not None:
                self.newexten(leg, "AppDial", "(Outgoing Line)")
            self.bridge_pair(ch, leg, br)
            try:
                await self.wait(ch, until=ch.bridge_left)
            finally:
                talk = self.clock.now() - started
                if not ch.hungup:
                    self.set_var(ch, "ANSWEREDTIME", str(int(talk)))
                    self.set_var(ch, "ANSWEREDTIME_MS", str(int(talk * 1000)))
                    self.set_var(ch, "DIALEDTIME", str(int(talk)))
                    self.set_var(ch, "DIALEDTIME_MS", str(int(talk * 1000)))
                    self.set_var(ch, "DIALSTATUS", "ANSWER")
            if "g" not in opts:
                ch.cause = 16  # the PBX loop reports SoftHangupRequest after the cleanup
                raise ChannelGone()
            return
        self.emit("DialEnd", [*self.dial_fields(ch, leg), ("DialStatus", status)])
        if not leg.hungup:
            leg.cause = 0
            self.hangup(leg, 0)  # its ;2 half gets HangupRequest from there
        self.set_var(ch, "DIALSTATUS", status)

    async def _ring(self, caller: Channel, leg: Channel, timeout: float | None) -> str:
        """Wait for ``leg`` to answer; NOANSWER after ``timeout``, BUSY/CHANUNAVAIL on hangup."""
        ringing_reported = False
        deadline = None if timeout is None else self.clock.now() + timeout
        while True:
            if leg.up:
                return "ANSWER"
            if leg.hungup:
                return "BUSY" if leg.cause == 17 else "CHANUNAVAIL"
            if leg.state == 5 and not ringing_reported:
                ringing_reported = True
                self.set_var(caller, "RINGTIME", "0")
                self.set_var(caller, "RINGTIME_MS", "0")
                self.emit("DialState", [*self.dial_fields(caller, leg), ("DialStatus", "RINGING")])
                continue
            remaining = None if deadline is None else deadline - self.clock.now()
            if remaining is not None and remaining <= 0:
                return "NOANSWER"
            changed = leg.changed  # renewed by new_state/hangup: an event-driven wait, no polling
            try:
                await self.wait(caller, remaining, until=changed)
            except ChannelGone:
                self.emit("DialEnd", [*self.dial_fields(caller, leg), ("DialStatus", "CANCEL")])
                self.request_hangup(leg, 16)
                raise

    # ---- Queue ----------------------------------------------------------------------------

    def member_fields(self, q: Queue, m: Member) -> list[tuple[str, str]]:
        return [("Queue", q.name), ("MemberName", m.name), ("Interface", m.interface),
                ("StateInterface", m.state_interface), ("Membership", "dynamic" if m.dynamic else "static"),
                ("Penalty", str(m.penalty)), ("CallsTaken", str(m.calls)), ("LastCall", str(m.last_call)),
                ("LastPause", str(m.last_pause)), ("LoginTime", str(m.login_time)),
                ("InCall", "1" if m.in_call else "0"), ("Status", str(self.member_status(m))),
                ("Paused", "1" if m.paused else "0"), ("PausedReason", m.reason),
                ("Ringinuse", "1" if q.ringinuse else "0"), ("Wrapuptime", str(q.wrapuptime))]

    def member_event(self, name: str, q: Queue, m: Member) -> None:
        self.emit(name, self.member_fields(q, m), "agent,all")

    def queue_add(self, qname: str, interface: str, name: str = "", penalty: int = 0,
                  paused: bool = False, state_interface: str = "", reason: str = "") -> str | None:
        q = self.queues.get(qname)
        if q is None:
            return "Unable to add interface to queue: No such queue"
        if interface in q.members:
            return "Unable to add interface: Already there"
        now = int(self.clock.wall())
        m = Member(interface, name or interface, state_interface or interface, penalty, paused, reason,
                   login_time=now, last_pause=now if paused else 0)
        q.members[interface] = m
        self.spawn(self._after_member_change(q, m, "QueueMemberAdded"))
        return None

    async def _after_member_change(self, q: Queue, m: Member, name: str) -> None:
        await asyncio.sleep(0)
        self.emit("DeviceStateChange", [("Device", f"Queue:{q.name}_pause_{m.interface}"),
                                        ("State", "INUSE" if m.paused else "NOT_INUSE")])
        self.member_event(name, q, m)

    def queue_remove(self, qname: str, interface: str) -> str | None:
        q = self.queues.get(qname)
        if q is None:
            return "Unable to remove interface from queue: No such queue"
        m = q.members.get(interface)
        if m is None:
            return "Unable to remove interface: Not there"
        del q.members[interface]

        async def later() -> None:
            await asyncio.sleep(0)
            self.member_event("QueueMemberRemoved", q, m)
        self.spawn(later())
        return None

    def queue_pause(self, qname: str | None, interface: str, paused: bool, reason: str = "") -> str | None:
        hits = [(q, q.members[interface]) for q in self.queues.values()
                if (qname in (None, "", q.name)) and interface in q.members]
        if not hits:
            return "Interface not found"
        for q, m in hits:
            m.paused = paused
            m.reason = reason if paused else ""
            m.last_pause = int(self.clock.wall()) if paused else m.last_pause

            async def later(q: Queue = q, m: Member = m) -> None:
                await asyncio.sleep(0)
                self.emit("DeviceStateChange", [("Device", f"Queue:{q.name}_pause_{m.interface}"),
                                                ("State", "INUSE" if m.paused else "NOT_INUSE")])
                self.member_event("QueueMemberPause", q, m)
            self.spawn(later())
        return None

    def available_members(self, q: Queue) -> list[Member]:
        out = []
        for m in q.members.values():
            if m.paused or m.ringing or m.in_call:
                continue
            st = self.device_state(m.state_interface)
            if st in ("UNAVAILABLE", "INVALID", "RINGING", "RINGINUSE"):
                continue
            if not q.ringinuse and st in ("INUSE", "BUSY", "ONHOLD"):
                continue
            out.append(m)
        return out

    def queue_abandon(self, ch: Channel) -> None:
        q = self.queues.get(ch.queued_in or "")
        ch.queued_in = None
        if q is None:
            return
        entry = next((e for e in q.entries if e.channel is ch), None)
        if entry is None:
            return
        q.abandoned += 1
        self.chan_event("QueueCallerAbandon", ch, ("Queue", q.name), ("Position", str(entry.position)),
                        ("OriginalPosition", str(entry.original_position)),
                        ("HoldTime", str(int(self.clock.now() - entry.joined))), privilege="agent,all")
        self._queue_leave(q, entry)
        if not entry.done.done():
            entry.done.set_result("ABANDON")

    def _queue_leave(self, q: Queue, entry: QueueEntry) -> None:
        q.entries.remove(entry)
        for i, e in enumerate(q.entries, 1):
            e.position = i
        self.chan_event("QueueCallerLeave", entry.channel, ("Queue", q.name), ("Position", str(entry.position)),
                        ("Count", str(len(q.entries))), privilege="agent,all")

    async def app_queue(self, ch: Channel, data: str) -> None:
        args = split_args(data)
        qname = args[0]
        q = self.queues.get(qname)
        if q is None:
            self.set_var(ch, "QUEUESTATUS", "UNKNOWN")
            return
        max_wait = float(args[4]) if len(args) > 4 and args[4].strip() else None
        loop = asyncio.get_running_loop()
        entry = QueueEntry(ch, self.clock.now(), len(q.entries) + 1, len(q.entries) + 1, loop.create_future())
        q.entries.append(entry)
        ch.queued_in = q.name
        self.chan_event("QueueCallerJoin", ch, ("Queue", q.name), ("Position", str(entry.position)),
                        ("Count", str(len(q.entries))), privilege="agent,all")
        self.moh_start(ch, q.musicclass)
        deadline = None if max_wait is None else self.clock.now() + max_wait
        try:
            while True:
                if deadline is not None and self.clock.now() >= deadline:
                    self.moh_stop(ch)
                    ch.queued_in = None
                    self._queue_leave(q, entry)
                    self.set_var(ch, "QUEUESTATUS", "TIMEOUT")
                    return
                members = self.available_members(q) if q.entries and q.entries[0] is entry else []
                if not members:
                    await self.wait(ch, 0.5)
                    continue
                members = self._order_members(q, members)
                answered = await self._ring_members(q, entry, members)
                if answered:
                    return
                await self.wait(ch, float(q.retry))
        except ChannelGone:
            raise

    def _order_members(self, q: Queue, members: list[Member]) -> list[Member]:
        if q.strategy == "ringall":
            return members
        allm = list(q.members.values())
        if q.strategy in ("rrmemory", "roundrobin", "linear"):
            members.sort(key=lambda m: (allm.index(m) - q.rr_last - 1) % max(1, len(allm)))
            return members[:1]
        if q.strategy == "random":
            return [self.rng.choice(members)]
        if q.strategy == "leastrecent":
            return [min(members, key=lambda m: m.last_call)]
        if q.strategy == "fewestcalls":
            return [min(members, key=lambda m: m.calls)]
        return members[:1]  # linear

    async def _ring_members(self, q: Queue, entry: QueueEntry, members: list[Member]) -> bool:
        ch = entry.channel
        legs: list[tuple[Member, Channel, Channel | None]] = []
        started = self.clock.now()
        for m in members:
            leg, two = self._new_dialed(ch, m.interface, "AppQueue")
            leg.exten = q.name  # app_queue's member channel carries the queue as its extension
            m.ringing = True
            legs.append((m, leg, two))
            self.emit("AgentCalled", [*ch.snap(), *leg.snap("Dest"), ("Queue", q.name),
                                      ("Interface", m.interface), ("MemberName", m.name)], "agent,all")
            self.emit("DialBegin", [*ch.snap(), *leg.snap("Dest"),
                                    ("DialString", m.interface)])
            self._start_callee(leg, two)
        deadline = started + q.timeout
        winner: tuple[Member, Channel, Channel | None] | None = None
        reported: set[str] = set()
        try:
            while winner is None:
                for m, leg, _two in legs:
                    if leg.up and not leg.hungup:
                        winner = (m, leg, _two)
                        break
                    if leg.state == 5 and leg.name not in reported:
                        reported.add(leg.name)
                        self.newexten(leg, "AppQueue", "(Outgoing Line)")  # ringing (ami-ring-no-answer)
                        self.emit("DialState", [*ch.snap(), *leg.snap("Dest"), ("DialStatus", "RINGING")])
                if winner is not None:
                    break
                live = [x for x in legs if not x[1].hungup]
                if not live or self.clock.now() >= deadline:
                    break
                await self.wait(ch, min(0.1, max(0.0, deadline - self.clock.now())))
        except ChannelGone:
            for m, leg, _two in legs:
                m.ringing = False
                if not leg.hungup:
                    self.emit("DialEnd", [*ch.snap(), *leg.snap("Dest"), ("DialStatus", "CANCEL")])
                    self.request_hangup(leg, 16)
            raise
        for m, leg, two in legs:
            m.ringing = False
            if winner is not None and leg is winner[1]:
                continue
            if not leg.hungup:
                if winner is None:
                    self.emit("AgentRingNoAnswer", [*ch.snap(), *leg.snap("Dest"), ("Queue", q.name),
                                                    ("Interface", m.interface), ("MemberName", m.name),
                                                    ("RingTime", str(int((self.clock.now() - started) * 1000)))],
                              "agent,all")
                    self.emit("DialEnd", [*ch.snap(), *leg.snap("Dest"), ("DialStatus", "NOANSWER")])
                self.emit("DialEnd", [*ch.snap(), *leg.snap("Dest"), ("DialStatus", "CANCEL")])
                if two is not None and not two.hungup:
                    self.chan_event("HangupRequest", two, ("Cause", "0"))
                    two.cause = 0
                    leg.peer_told = True  # ;1 is the one hanging up: it gets no HangupRequest
                    self.request_hangup(two, 0)
                else:
                    leg.cause = 0
                    self.request_hangup(leg, 0)
            else:
                self.emit("DialEnd", [*ch.snap(), *leg.snap("Dest"), ("DialStatus", "BUSY")])
        if winner is None:
            if q.strategy in ("rrmemory", "roundrobin", "linear") and legs:
                q.rr_last = list(q.members.values()).index(legs[0][0]) if legs[0][0] in q.members.values() else -1
            return False
        m, leg, two = winner
        if q.strategy in ("rrmemory", "roundrobin") and m in q.members.values():
            q.rr_last = list(q.members.values()).index(m)
        ring_time = int(self.clock.now() - started)
        hold_time = int(self.clock.now() - entry.joined)
        self.emit("DialEnd", [*ch.snap(), *leg.snap("Dest"), ("DialStatus", "ANSWER")])
        if two is not None:
            self.newexten(leg, "AppQueue", "(Outgoing Line)")  # as Dial does for its answered leg
        self.moh_stop(ch)
        ch.queued_in = None
        self._queue_leave(q, entry)
        m.in_call = True
        self.emit("AgentConnect", [*ch.snap(), *leg.snap("Dest"), ("Queue", q.name), ("Interface", m.interface),
                                   ("MemberName", m.name), ("HoldTime", str(hold_time)),
                                   ("RingTime", str(ring_time))], "agent,all")
        self.bridge_pair(ch, leg)
        connected = self.clock.now()
        completed = False

        def complete(reason: str) -> None:
            nonlocal completed
            if completed:
                return
            completed = True
            m.in_call = False
            m.calls += 1
            m.last_call = int(self.clock.wall())
            q.completed += 1
            self.emit("AgentComplete", [*ch.snap(), *leg.snap("Dest"), ("Queue", q.name),
                                        ("Interface", m.interface), ("MemberName", m.name),
                                        ("HoldTime", str(hold_time)),
                                        ("TalkTime", str(int(self.clock.now() - connected))),
                                        ("Reason", reason)], "agent,all")
            if not entry.done.done():
                entry.done.set_result("ANSWER")

        leg.on_hangup.append(lambda: complete("agent"))
        reason = "agent"
        try:
            await self.wait(ch, until=ch.bridge_left)
            reason = "agent" if leg.hungup else "transfer"
        except ChannelGone:
            reason = "caller"
            raise
        finally:
            complete(reason)
        if not ch.hungup and reason == "agent":
            ch.cause = 16
            raise ChannelGone()
        return True

    # ---- ChanSpy --------------------------------------------------------------------------

    async def app_chanspy(self, ch: Channel, data: str) -> None:
        args = split_args(data)
        prefix = args[0]
        opts = args[1] if len(args) > 1 else ""
        self.answer(ch)
        target = None
        for _ in range(100):
            cands = [c for c in self.channels.values() if c.name.startswith(prefix) and not c.hungup
                     and (c.bridge is not None or (c.other is not None and c.other.bridge is not None))]
            if cands:
                # the spied half: ;2 for listen/whisper, ;1 for barge (SpyeeChannel, fact 9)
                want = 1 if "B" in opts else 2
                target = next((c for c in cands if c.half == want), cands[0])
                break
            await self.wait(ch, 0.5)
        if target is None:
            return
        mode = "barge" if "B" in opts else "whisper" if "w" in opts else "listen"
        ch.spying = (target, mode)
        self.set_var(ch, "SPY_MODE", mode, event=False)
        self.set_var(ch, "SPY_OPTIONS", opts, event=False)
        self.emit("ChanSpyStart", [*ch.snap("Spyer"), *target.snap("Spyee")])
        await self.wait(ch, until=target.gone)
        self.stop_spy(ch)
        if "E" in opts:
            raise ChannelGone()

    SPY_DIGITS = {"4": "listen", "5": "whisper", "6": "barge"}  # ChanSpy option d

    def spy_digit(self, ch: Channel, digit: str) -> None:
        """A digit read by a spying channel: with option `d`, 4 listens, 5 whispers, 6 barges
        (Asterisk emits no event for the switch; the spyee stays the same)."""
        if ch.spying is None or "d" not in ch.vars.get("SPY_OPTIONS", "") or digit not in self.SPY_DIGITS:
            return
        target, _ = ch.spying
        mode = self.SPY_DIGITS[digit]
        ch.spying = (target, mode)
        self.set_var(ch, "SPY_MODE", mode, event=False)

    def stop_spy(self, ch: Channel) -> None:
        if ch.spying is None:
            return
        target, _ = ch.spying
        ch.spying = None
        self.emit("ChanSpyStop", [*ch.snap("Spyer"), *target.snap("Spyee")])

    # ---- Park (res_parking) ---------------------------------------------------------------

    async def app_parkedcall(self, ch: Channel, data: str) -> None:
        """Retrieval (fact 15): BridgeCreate, MusicOnHoldStop, BridgeLeave from the lot,
        BridgeEnter x2, UnParkedCall; then a parker left in the old bridge leaves and hangs up."""
        args = split_args(data)
        space = int(args[-1]) if args and args[-1].strip().isdigit() else 0
        item = self.parked.pop(space, None)
        if item is None:
            return
        parkee, _, _ = item
        origin = self.park_origin.pop(space, None)
        self.answer(ch)
        br = self.create_bridge()
        self.moh_stop(parkee)
        self.move_to_bridge(parkee, br)
        self.enter_bridge(br, ch)
        self.emit("UnParkedCall", [*parkee.snap("Parkee"), *ch.snap("Retriever"), *self._park_tail(space, item)])
        if origin is not None:
            for c in list(origin.channels):
                c.cause = 16
                self.leave_bridge(c)
                self._after_bridge(c)
        await self.wait(ch, until=ch.bridge_left)

    def _park_tail(self, space: int, item: tuple[Channel, float, int]) -> list[tuple[str, str]]:
        _, since, timeout = item
        dur = int(self.clock.now() - since)
        return [("ParkerDialString", ""), ("Parkinglot", "default"), ("ParkingSpace", str(space)),
                ("ParkingTimeout", str(max(0, timeout - dur))), ("ParkingDuration", str(dur))]

    # ---- shutdown -------------------------------------------------------------------------

    async def close(self) -> None:
        for ch in list(self.channels.values()):
            if not ch.hungup:
                self.hangup(ch, 0)
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
