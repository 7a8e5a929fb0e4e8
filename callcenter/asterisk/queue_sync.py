# ruff: noqa: E501
"""Keep the fallback queue's members in step with the agents' state.

While the contact center is up, every agent who is ready is an unpaused member of the fallback
queue, an agent who is not ready is a paused member, and an offline agent is not a member.  So
when the FastAGI server is down and calls land in the plain queue, they never ring an agent who
is busy or not ready.

* :func:`plan` is pure: desired states + what the queue has now -> the QueueAdd / QueueRemove /
  QueuePause actions to send.
* :class:`QueueSync` sends them with the AMI client, resyncs from ``QueueStatus`` (after each
  reconnect, via the client's ``Resynced`` event, or on demand) and forwards device-state changes
  of the tracker to callbacks (an agent on a call the center did not route counts as busy).
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.asterisk.ami import Action, make_action
from callcenter.asterisk.tracker import CallTracker


class AgentState(enum.Enum):
    READY = "ready"
    NOT_READY = "not-ready"
    OFFLINE = "offline"


@dataclass(frozen=True)
class DesiredAgent:
    state: AgentState
    interface: str  # e.g. PJSIP/1001
    name: str = ""
    state_interface: str = ""
    penalty: int = 0


@dataclass(frozen=True)
class CurrentMember:
    interface: str
    paused: bool


def plan(queue: str, desired: Mapping[str, DesiredAgent], current: Iterable[CurrentMember],
         *, reason: str = "not-ready") -> list[Action]:
    """The actions that make ``queue``'s members match ``desired`` (pure)."""
    have = {m.interface: m for m in current}
    want = {a.interface: (agent, a) for agent, a in desired.items() if a.state is not AgentState.OFFLINE}
    actions: list[Action] = []
    for iface, (agent, a) in sorted(want.items()):
        paused = a.state is AgentState.NOT_READY
        m = have.get(iface)
        if m is None:
            fields: dict[str, Any] = {"Queue": queue, "Interface": iface, "MemberName": a.name or agent,
                                      "Penalty": a.penalty, "Paused": "true" if paused else "false"}
            if a.state_interface:
                fields["StateInterface"] = a.state_interface
            if paused:
                fields["Reason"] = reason
            actions.append(make_action("QueueAdd", fields))
        elif m.paused != paused:
            fields = {"Queue": queue, "Interface": iface, "Paused": "true" if paused else "false"}
            if paused:
                fields["Reason"] = reason
            actions.append(make_action("QueuePause", fields))
    for iface in sorted(set(have) - set(want)):
        actions.append(make_action("QueueRemove", Queue=queue, Interface=iface))
    return actions


def members_from_status(events: Iterable[Any], queue: str) -> list[CurrentMember]:
    """``QueueMember`` items of a QueueStatus answer -> current members of ``queue``."""
    return [CurrentMember(e.get("Location") or "", e.get("Paused") == "1")
            for e in events if e.name == "QueueMember" and e.get("Queue") == queue]


class QueueSync:
    """``QueueSync(client, "cc-fallback", tracker)``; ``await sync.apply(desired)``."""

    def __init__(self, client: Any, queue: str = "cc-fallback", tracker: CallTracker | None = None) -> None:
        self.client = client
        self.queue = queue
        self.tracker = tracker
        self.desired: dict[str, DesiredAgent] = {}
        self.current: dict[str, CurrentMember] = {}
        self.on_device_state: list[Callable[[str, str], None]] = []
        if tracker is not None:
            tracker.on_device_state.append(self._device)

    def _device(self, device: str, state: str) -> None:
        for cb in list(self.on_device_state):
            cb(device, state)

    def agent_of_device(self, device: str) -> str | None:
        for agent, a in self.desired.items():
            if device in (a.interface, a.state_interface):
                return agent
        return None

    async def resync(self) -> None:
        """Read the queue's members back from Asterisk (after a reconnect)."""
        result = await self.client.send_action("QueueStatus", Queue=self.queue)
        self.current = {m.interface: m for m in members_from_status(result.events, self.queue)}

    async def apply(self, desired: Mapping[str, DesiredAgent], *, resync: bool = False) -> list[Action]:
        """Send what it takes to reach ``desired``; returns the actions sent."""
        self.desired = dict(desired)
        if resync:
            await self.resync()
        actions = plan(self.queue, self.desired, self.current.values())
        for action in actions:
            result = await self.client.send_action(action)
            iface = action.get("Interface") or ""
            ok = result.ok or "Already there" in (result.response.message or "")
            if action.name == "QueueRemove":
                self.current.pop(iface, None)
            elif ok:
                self.current[iface] = CurrentMember(iface, action.get("Paused") == "true")
        return actions
