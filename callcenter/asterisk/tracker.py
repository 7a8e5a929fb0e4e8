# ruff: noqa: E501
"""The call tracker: a pure model of what is happening on the PBX, fed by AMI events.

No I/O: ``tracker.feed(event)`` updates the model and returns what changed.  Calls are grouped by
``Linkedid``; each call holds its channels (both halves of Local channels), each channel its
bridge, state, hold/music, recording, queue and ConfBridge conference.  Queues hold members and waiting entries; device
states are kept per device and reported to ``on_device_state`` callbacks (the fallback-queue sync
and routing use them to count an agent on a call the center did not route as busy).

After a reconnect, :meth:`CallTracker.resync` rebuilds everything from the ``CoreShowChannels``
and ``QueueStatus`` event lists (the AMI client's ``Resynced`` local event carries them).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["BridgeInfo", "CallInfo", "ConferenceInfo", "CallTracker", "Change", "ChannelInfo", "MemberInfo",
           "QueueEntryInfo", "QueueInfo", "TransferInfo"]


class AmiEvent(Protocol):
    @property
    def name(self) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None: ...


@dataclass
class ChannelInfo:
    uniqueid: str
    name: str
    linkedid: str
    state: int = 0
    caller_num: str = ""
    caller_name: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    bridge: str | None = None
    on_hold: bool = False
    music: bool = False
    recording: bool = False
    queue: str | None = None
    spying_on: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def device(self) -> str:
        """``PJSIP/1001-0000000a`` -> ``PJSIP/1001``; ``Local/1001@agents-00000001;2`` -> ``Local/1001@agents``."""
        base = self.name.split(";", 1)[0]
        head, sep, tail = base.rpartition("-")
        return head if sep and len(tail) == 8 else base

    @property
    def is_local(self) -> bool:
        return self.name.startswith("Local/")


@dataclass
class BridgeInfo:
    uniqueid: str
    type: str = "basic"
    channels: set[str] = field(default_factory=set)  # uniqueids


@dataclass
class TransferInfo:
    kind: str  # blind | attended | redirect
    transferer: str
    transferee: str
    target: str


@dataclass
class ConferenceInfo:
    name: str
    bridge: str = ""
    members: set[str] = field(default_factory=set)  # uniqueids of the channels in it
    ended: bool = False


@dataclass
class CallInfo:
    linkedid: str
    channels: dict[str, ChannelInfo] = field(default_factory=dict)
    ended: bool = False
    answered: bool = False
    dial_status: str | None = None
    transfers: list[TransferInfo] = field(default_factory=list)
    recordings: int = 0
    conference: str | None = None  # the ConfBridge conference a channel of the call is in
    agent_interface: str | None = None

    @property
    def on_hold(self) -> bool:
        return any(c.on_hold or c.music for c in self.channels.values())


@dataclass
class MemberInfo:
    interface: str
    name: str = ""
    state_interface: str = ""
    paused: bool = False
    reason: str = ""
    status: int = 0
    in_call: bool = False
    penalty: int = 0


@dataclass
class QueueEntryInfo:
    uniqueid: str
    channel: str
    position: int
    caller_num: str = ""


@dataclass
class QueueInfo:
    name: str
    members: dict[str, MemberInfo] = field(default_factory=dict)
    entries: dict[str, QueueEntryInfo] = field(default_factory=dict)  # by uniqueid
    abandoned: int = 0
    completed: int = 0


@dataclass(frozen=True)
class Change:
    """One thing that changed: ``kind`` is call_started, call_ended, answered, bridged, hold,
    unhold, transfer, recording, conference, queue_join, queue_leave, queue_abandon, agent_connect,
    member, device."""

    kind: str
    key: str
    detail: str = ""


DeviceCallback = Callable[[str, str], None]


def _int(v: str | None, default: int = 0) -> int:
    try:
        return int(v) if v is not None else default
    except ValueError:
        return default


class CallTracker:
    def __init__(self) -> None:
        self.calls: dict[str, CallInfo] = {}
        self.channels: dict[str, ChannelInfo] = {}
        self.bridges: dict[str, BridgeInfo] = {}
        self.queues: dict[str, QueueInfo] = {}
        self.conferences: dict[str, ConferenceInfo] = {}  # ConfBridge conferences by name
        self.devices: dict[str, str] = {}
        self.on_device_state: list[DeviceCallback] = []
        self.ended: list[CallInfo] = []
        self.max_ended = 1000

    # ---- queries -----------------------------------------------------------------------------

    def call_of(self, channel: str) -> CallInfo | None:
        ch = self.channel_by_name(channel)
        return self.calls.get(ch.linkedid) if ch is not None else None

    def channel_by_name(self, name: str) -> ChannelInfo | None:
        for ch in self.channels.values():
            if ch.name == name:
                return ch
        return None

    def busy_devices(self) -> set[str]:
        """Devices on a call or ringing (from DeviceStateChange and from live channels)."""
        out = {d for d, s in self.devices.items() if s in ("INUSE", "RINGING", "BUSY", "RINGINUSE", "ONHOLD")}
        out.update(ch.device for ch in self.channels.values())
        return out

    def active_calls(self) -> list[CallInfo]:
        return [c for c in self.calls.values() if not c.ended]

    # ---- feeding -----------------------------------------------------------------------------

    def feed_all(self, events: Iterable[AmiEvent]) -> list[Change]:
        out: list[Change] = []
        for ev in events:
            out.extend(self.feed(ev))
        return out

    def feed(self, ev: AmiEvent) -> list[Change]:
        handler = getattr(self, "_on_" + ev.name.lower(), None)
        if handler is None:
            return []
        result: list[Change] = handler(ev)
        return result

    def _channel(self, ev: AmiEvent, prefix: str = "") -> ChannelInfo | None:
        uid = ev.get(prefix + "Uniqueid")
        if not uid:
            return None
        ch = self.channels.get(uid)
        if ch is None:
            ch = ChannelInfo(uid, ev.get(prefix + "Channel") or "", ev.get(prefix + "Linkedid") or uid)
            self.channels[uid] = ch
            call = self.calls.get(ch.linkedid)
            if call is None:
                call = self.calls[ch.linkedid] = CallInfo(ch.linkedid)
            call.channels[uid] = ch
        self._update(ch, ev, prefix)
        return ch

    @staticmethod
    def _update(ch: ChannelInfo, ev: AmiEvent, prefix: str) -> None:
        st = ev.get(prefix + "ChannelState")
        if st is not None:
            ch.state = _int(st)
        num = ev.get(prefix + "CallerIDNum")
        if num is not None:
            ch.caller_num = "" if num == "<unknown>" else num
        name = ev.get(prefix + "CallerIDName")
        if name is not None:
            ch.caller_name = "" if name == "<unknown>" else name
        for key, attr in (("Context", "context"), ("Exten", "exten")):
            value = ev.get(prefix + key)
            if value is not None:
                setattr(ch, attr, value)

    def _on_newchannel(self, ev: AmiEvent) -> list[Change]:
        new_call = (ev.get("Linkedid") or "") not in self.calls
        ch = self._channel(ev)
        if ch is None:
            return []
        return [Change("call_started", ch.linkedid, ch.name)] if new_call else []

    def _on_newstate(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        if ch is None or ch.state != 6:
            return []
        call = self.calls[ch.linkedid]
        if not call.answered:
            call.answered = True
            return [Change("answered", ch.linkedid, ch.name)]
        return []

    def _on_newexten(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        if ch is not None:
            ch.application = ev.get("Application") or ""
        return []

    _on_newcallerid = _on_newexten

    def _on_varset(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        if ch is not None:
            ch.variables[ev.get("Variable") or ""] = ev.get("Value") or ""
        return []

    def _on_hangup(self, ev: AmiEvent) -> list[Change]:
        uid = ev.get("Uniqueid") or ""
        ch = self.channels.pop(uid, None)
        if ch is None:
            return []
        if ch.bridge and ch.bridge in self.bridges:
            self.bridges[ch.bridge].channels.discard(uid)
        call = self.calls.get(ch.linkedid)
        if call is None:
            return []
        call.channels.pop(uid, None)
        if call.channels:
            return []
        call.ended = True
        del self.calls[call.linkedid]
        self.ended.append(call)
        del self.ended[:-self.max_ended]
        return [Change("call_ended", call.linkedid, ev.get("Cause") or "")]

    def _on_dialend(self, ev: AmiEvent) -> list[Change]:
        caller = self._channel(ev)
        dest = self._channel(ev, "Dest")
        status = ev.get("DialStatus") or ""
        key = (caller or dest).linkedid if (caller or dest) is not None else ""  # type: ignore[union-attr]
        call = self.calls.get(key)
        if call is not None:
            call.dial_status = status
            if status == "ANSWER" and dest is not None:
                call.agent_interface = dest.device
        return [Change("dial_end", key, status)] if key else []

    def _on_dialbegin(self, ev: AmiEvent) -> list[Change]:
        self._channel(ev)
        self._channel(ev, "Dest")
        return []

    def _on_bridgecreate(self, ev: AmiEvent) -> list[Change]:
        bid = ev.get("BridgeUniqueid") or ""
        self.bridges.setdefault(bid, BridgeInfo(bid, ev.get("BridgeType") or "basic"))
        return []

    def _on_bridgeenter(self, ev: AmiEvent) -> list[Change]:
        bid = ev.get("BridgeUniqueid") or ""
        br = self.bridges.setdefault(bid, BridgeInfo(bid, ev.get("BridgeType") or "basic"))
        ch = self._channel(ev)
        if ch is None:
            return []
        br.channels.add(ch.uniqueid)
        ch.bridge = bid
        return [Change("bridged", ch.linkedid, bid)]

    def _on_bridgeleave(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        bid = ev.get("BridgeUniqueid") or ""
        if ch is not None:
            ch.bridge = None
            if bid in self.bridges:
                self.bridges[bid].channels.discard(ch.uniqueid)
        return []

    def _on_bridgedestroy(self, ev: AmiEvent) -> list[Change]:
        self.bridges.pop(ev.get("BridgeUniqueid") or "", None)
        return []

    def _hold(self, ev: AmiEvent, attr: str, value: bool, kind: str) -> list[Change]:
        ch = self._channel(ev)
        if ch is None:
            return []
        setattr(ch, attr, value)
        return [Change(kind, ch.linkedid, ch.name)]

    def _on_hold(self, ev: AmiEvent) -> list[Change]:
        return self._hold(ev, "on_hold", True, "hold")

    def _on_unhold(self, ev: AmiEvent) -> list[Change]:
        return self._hold(ev, "on_hold", False, "unhold")

    def _on_musiconholdstart(self, ev: AmiEvent) -> list[Change]:
        return self._hold(ev, "music", True, "hold")

    def _on_musiconholdstop(self, ev: AmiEvent) -> list[Change]:
        return self._hold(ev, "music", False, "unhold")

    def _on_mixmonitorstart(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        if ch is None:
            return []
        ch.recording = True
        self.calls[ch.linkedid].recordings += 1
        return [Change("recording", ch.linkedid, "start")]

    def _on_mixmonitorstop(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        if ch is None:
            return []
        ch.recording = False
        return [Change("recording", ch.linkedid, "stop")]

    def _on_blindtransfer(self, ev: AmiEvent) -> list[Change]:
        er = self._channel(ev, "Transferer")
        ee = self._channel(ev, "Transferee")
        if er is None or ee is None:
            return []
        t = TransferInfo("blind", er.name, ee.name, f"{ev.get('Extension')}@{ev.get('Context')}")
        self.calls[ee.linkedid].transfers.append(t)
        return [Change("transfer", ee.linkedid, "blind")]

    def _on_attendedtransfer(self, ev: AmiEvent) -> list[Change]:
        er = self._channel(ev, "OrigTransferer")
        if ev.get("Result") != "Success":  # Fail: the transferee hung up while the target rang
            return [Change("transfer", er.linkedid, "attended-failed")] if er is not None else []
        ee = self._channel(ev, "Transferee")
        if er is None or ee is None:
            return []
        t = TransferInfo("attended", er.name, ee.name, ev.get("DestBridgeUniqueid") or "")
        self.calls[ee.linkedid].transfers.append(t)
        return [Change("transfer", ee.linkedid, "attended")]

    def _on_confbridgestart(self, ev: AmiEvent) -> list[Change]:
        name = ev.get("Conference") or ""
        self.conferences[name] = ConferenceInfo(name, ev.get("BridgeUniqueid") or "")
        return [Change("conference", name, "start")]

    def _conference_member(self, ev: AmiEvent, joined: bool) -> list[Change]:
        name = ev.get("Conference") or ""
        conf = self.conferences.setdefault(name, ConferenceInfo(name, ev.get("BridgeUniqueid") or ""))
        ch = self._channel(ev)
        if ch is None:
            return []
        call = self.calls.get(ch.linkedid)
        if joined:
            conf.members.add(ch.uniqueid)
            if call is not None:
                call.conference = name
        else:
            conf.members.discard(ch.uniqueid)
            if call is not None and not any(u in conf.members for u in call.channels):
                call.conference = None
        return [Change("conference", name, f"{'join' if joined else 'leave'} {ch.name}")]

    def _on_confbridgejoin(self, ev: AmiEvent) -> list[Change]:
        return self._conference_member(ev, True)

    def _on_confbridgeleave(self, ev: AmiEvent) -> list[Change]:
        return self._conference_member(ev, False)

    def _on_confbridgeend(self, ev: AmiEvent) -> list[Change]:
        conf = self.conferences.pop(ev.get("Conference") or "", None)
        if conf is None:
            return []
        conf.ended = True
        return [Change("conference", conf.name, "end")]

    def _on_chanspystart(self, ev: AmiEvent) -> list[Change]:
        spyer = self._channel(ev, "Spyer")
        spyee = self._channel(ev, "Spyee")
        if spyer is not None and spyee is not None:
            spyer.spying_on = spyee.name
        return []

    def _on_chanspystop(self, ev: AmiEvent) -> list[Change]:
        spyer = self._channel(ev, "Spyer")
        if spyer is not None:
            spyer.spying_on = None
        return []

    # ---- queues ------------------------------------------------------------------------------

    def _queue(self, name: str) -> QueueInfo:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = QueueInfo(name)
        return q

    def _on_queuecallerjoin(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        q = self._queue(ev.get("Queue") or "")
        if ch is None:
            return []
        ch.queue = q.name
        q.entries[ch.uniqueid] = QueueEntryInfo(ch.uniqueid, ch.name, _int(ev.get("Position")), ch.caller_num)
        return [Change("queue_join", ch.linkedid, q.name)]

    def _on_queuecallerleave(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        q = self._queue(ev.get("Queue") or "")
        uid = ev.get("Uniqueid") or ""
        q.entries.pop(uid, None)
        for i, e in enumerate(sorted(q.entries.values(), key=lambda e: e.position), 1):
            e.position = i
        if ch is not None:
            ch.queue = None
        return [Change("queue_leave", ch.linkedid if ch else uid, q.name)]

    def _on_queuecallerabandon(self, ev: AmiEvent) -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        q.abandoned += 1
        return [Change("queue_abandon", ev.get("Linkedid") or "", q.name)]

    def _on_agentconnect(self, ev: AmiEvent) -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        m = q.members.get(ev.get("Interface") or "")
        if m is not None:
            m.in_call = True
        call = self.calls.get(ev.get("Linkedid") or "")
        if call is not None:
            call.agent_interface = ev.get("Interface")
        return [Change("agent_connect", ev.get("Linkedid") or "", ev.get("Interface") or "")]

    def _on_agentcomplete(self, ev: AmiEvent) -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        q.completed += 1
        m = q.members.get(ev.get("Interface") or "")
        if m is not None:
            m.in_call = False
        return []

    def _member(self, ev: AmiEvent, name_key: str = "MemberName", iface_key: str = "Interface") -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        iface = ev.get(iface_key) or ""
        m = q.members.get(iface)
        if m is None:
            m = q.members[iface] = MemberInfo(iface)
        m.name = ev.get(name_key) or m.name
        m.state_interface = ev.get("StateInterface") or m.state_interface or iface
        m.paused = ev.get("Paused") == "1"
        m.reason = ev.get("PausedReason") or ""
        m.status = _int(ev.get("Status"), m.status)
        m.in_call = ev.get("InCall") == "1"
        m.penalty = _int(ev.get("Penalty"), m.penalty)
        return [Change("member", q.name, iface)]

    def _on_queuememberadded(self, ev: AmiEvent) -> list[Change]:
        return self._member(ev)

    _on_queuememberpause = _on_queuememberadded
    _on_queuememberstatus = _on_queuememberadded

    def _on_queuemember(self, ev: AmiEvent) -> list[Change]:  # QueueStatus list item
        return self._member(ev, "Name", "Location")

    def _on_queuememberremoved(self, ev: AmiEvent) -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        q.members.pop(ev.get("Interface") or "", None)
        return [Change("member", q.name, ev.get("Interface") or "")]

    def _on_queueparams(self, ev: AmiEvent) -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        q.completed = _int(ev.get("Completed"), q.completed)
        q.abandoned = _int(ev.get("Abandoned"), q.abandoned)
        return []

    def _on_queueentry(self, ev: AmiEvent) -> list[Change]:
        q = self._queue(ev.get("Queue") or "")
        uid = ev.get("Uniqueid") or ""
        q.entries[uid] = QueueEntryInfo(uid, ev.get("Channel") or "", _int(ev.get("Position")),
                                        ev.get("CallerIDNum") or "")
        ch = self.channels.get(uid)
        if ch is not None:
            ch.queue = q.name
        return []

    # ---- devices -----------------------------------------------------------------------------

    def _on_devicestatechange(self, ev: AmiEvent) -> list[Change]:
        dev, state = ev.get("Device") or "", ev.get("State") or ""
        if self.devices.get(dev) == state:
            return []
        self.devices[dev] = state
        for cb in list(self.on_device_state):
            cb(dev, state)
        return [Change("device", dev, state)]

    # ---- resync ------------------------------------------------------------------------------

    def _on_coreshowchannel(self, ev: AmiEvent) -> list[Change]:
        ch = self._channel(ev)
        if ch is not None:
            ch.application = ev.get("Application") or ""
            bid = ev.get("BridgeId") or ""
            if bid:
                ch.bridge = bid
                self.bridges.setdefault(bid, BridgeInfo(bid)).channels.add(ch.uniqueid)
        return []

    def resync(self, channel_items: Iterable[AmiEvent], queue_items: Iterable[AmiEvent]) -> None:
        """Forget the model and rebuild it from CoreShowChannels and QueueStatus list items."""
        self.calls.clear()
        self.channels.clear()
        self.bridges.clear()
        self.queues.clear()
        for ev in channel_items:
            self.feed(ev)
        for ev in queue_items:
            self.feed(ev)
        for call in self.calls.values():
            call.answered = any(c.state == 6 for c in call.channels.values())
