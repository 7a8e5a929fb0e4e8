"""Agents as the console sees them: presence from the routing engine, pushed to the consoles."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from callcenter.services.consoles import ConsoleHub
from routing import AgentProfile, Channel, Engine, Presence, SlotState
from routing.store import AgentRecord

log = logging.getLogger(__name__)

REASON_CODES = (
    ("break", "Break"), ("lunch", "Lunch"), ("meeting", "Meeting"), ("training", "Training"),
    ("after-call", "After-call work"), ("no-answer", "Missed a call"), ("disconnected", "Console closed"),
)


@dataclass
class Agent:
    user_id: int
    username: str
    display_name: str
    extension: str | None
    teams: tuple[str, ...] = ()

    @property
    def agent_id(self) -> str:
        return str(self.user_id)

    @property
    def dial_string(self) -> str | None:
        """What the dialplan dials: an extension like `1001` becomes `PJSIP/1001`."""
        ext = self.extension
        if not ext:
            return None
        return ext if "/" in ext else f"PJSIP/{ext}"


class AgentDirectory:
    """Who the agents are, and what state the routing engine has them in."""

    def __init__(self, engine: Engine, hub: ConsoleHub, *, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.hub = hub
        self.agents: dict[str, Agent] = {}
        self.on_change: list[Callable[[str], None]] = []  # agent id; e.g. the fallback queue sync
        self._wall = wall
        self._mono = mono
        self._pushing: dict[str, bool] = {}  # agent -> asked again while its state was being read
        self._push_tasks: set[asyncio.Task[None]] = set()

    def add(self, agent: Agent, profile: AgentProfile) -> None:
        self.agents[agent.agent_id] = agent

    def by_user(self, user_id: int) -> Agent | None:
        return self.agents.get(str(user_id))

    def status(self, agent_id: str) -> dict[str, object]:
        """The `agent_state` fields: offline, ready, not_ready, busy or wrap_up."""
        return self.status_of(agent_id, self.engine.store.agent(agent_id))

    def status_of(self, agent_id: str, rec: AgentRecord | None) -> dict[str, object]:
        """status() from the agent's routing record, read beforehand (None: no record)."""
        if rec is None:
            # e.g. a supervisor who took a chat over, without a routing profile: offline as of now
            return {"state": "offline", "reason": None, "since": self._iso(self._mono()),
                    "wrapup_until": None}
        busy = any(state is SlotState.BUSY for _ch, state in rec.slots.values())
        state = {Presence.OFFLINE: "offline", Presence.READY: "ready",
                 Presence.NOT_READY: "not_ready", Presence.WRAP_UP: "wrap_up"}[rec.presence]
        if busy and rec.presence is Presence.READY:
            state = "busy"
        until = self._iso(rec.wrap_up_until) if rec.presence is Presence.WRAP_UP else None
        return {"state": state, "reason": rec.reason, "since": self._iso(rec.presence_since),
                "wrapup_until": until}

    def push_state(self, agent_id: str) -> None:
        agent = self.agents.get(agent_id)
        if agent is not None:
            aread = getattr(self.engine.store, "aagent", None)
            if aread is not None:  # a shared (Redis) store: read without blocking the event loop
                self._push_later(agent, aread)
            else:
                self.hub.send(agent.user_id, "agent_state", **self.status(agent_id))
        for callback in self.on_change:
            callback(agent_id)

    def _push_later(self, agent: Agent, aread: Callable[[str], object]) -> None:
        """The state read (asyncio) and sent; asked again meanwhile, it is read again after: the
        last state sent is always read after the last change asked about."""
        aid = agent.agent_id
        if aid in self._pushing:
            self._pushing[aid] = True
            return
        self._pushing[aid] = False

        async def run() -> None:
            try:
                while True:
                    self._pushing[aid] = False
                    rec = await aread(aid)  # type: ignore[misc]
                    self.hub.send(agent.user_id, "agent_state", **self.status_of(aid, rec))
                    if not self._pushing.get(aid):
                        return
            except Exception as e:  # noqa: BLE001 - Redis away: the next change pushes again
                log.warning("agent %s: state not pushed (%s)", aid, e)
            finally:
                self._pushing.pop(aid, None)

        task = asyncio.get_running_loop().create_task(run())
        self._push_tasks.add(task)
        task.add_done_callback(self._push_tasks.discard)

    def by_device(self, device: str) -> Agent | None:
        """The agent whose phone is `device` (PJSIP/1001, or 1001)."""
        for agent in self.agents.values():
            if agent.dial_string and device in (agent.dial_string, agent.extension):
                return agent
        return None

    def busy_with_voice(self, agent_id: str) -> bool:
        rec = self.engine.store.agent(agent_id)
        return rec is not None and any(ch is Channel.VOICE for ch, _s in rec.slots.values())

    def _iso(self, mono: float | None) -> str | None:
        """An engine (monotonic) time as ISO UTC."""
        if mono is None:
            return None
        wall = self._wall() - (self._mono() - mono)
        return datetime.fromtimestamp(wall, UTC).isoformat()
