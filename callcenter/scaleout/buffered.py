"""Interaction writes that survive a database outage: while PostgreSQL cannot be reached, the
store's `set_state` and `append_event` go to the outbox (outbox.py) instead of failing, and are
written in order once it is back. After the first buffered write of an interaction, its later
writes go to the outbox too, so that they stay in order. Opening an interaction still needs the
database (it gives the id): a call that arrives during the outage goes to the PBX's fallback queue.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from callcenter.scaleout.outbox import Outbox
from crm_core._base import UNSET

log = logging.getLogger(__name__)
DB_UNAVAILABLE = (OperationalError, DBAPIError, OSError, TimeoutError)


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


class BufferedWrites:
    def __init__(self, store: Any, outbox: Outbox) -> None:
        self.store, self.outbox = store, outbox
        self.buffered: set[int] = set()  # interactions with writes in the outbox
        self.count = 0
        self._set_state, self._append_event = store.set_state, store.append_event

    def install(self) -> None:
        self.store.set_state = self.set_state
        self.store.append_event = self.append_event

    async def _put(self, interaction_id: int, op: dict[str, Any]) -> None:
        self.buffered.add(interaction_id)
        self.count += 1
        await self.outbox.put({"interaction_id": interaction_id, "external_id": f"i{interaction_id}",
                               "at": datetime.now(UTC).isoformat(), **op})

    async def set_state(self, interaction_id: int, state: str, *, at: datetime | None = None,
                        agent_id: Any = UNSET, queue: Any = UNSET, data: Any = None,
                        events: Any = ()) -> Any:
        op = {"op": "state", "state": state, "data": dict(data or {}),
              "events": [(k, {kk: _jsonable(vv) for kk, vv in dict(d).items()}) for k, d in events]}
        if agent_id is not UNSET:
            op["agent_id"] = agent_id
        if queue is not UNSET:
            op["queue"] = queue
        if at is not None:
            op["at"] = at.isoformat()
        if interaction_id not in self.buffered:
            try:
                return await self._set_state(interaction_id, state, at=at, agent_id=agent_id,
                                             queue=queue, data=data, events=events)
            except DB_UNAVAILABLE as e:
                log.warning("interaction %s: database unavailable (%s); state %s goes to the outbox",
                            interaction_id, type(e).__name__, state)
        await self._put(interaction_id, op)
        return None

    async def append_event(self, interaction_id: int, kind: str, ok: bool = True,
                           data: Any = None, **kw: Any) -> Any:
        if interaction_id not in self.buffered:
            try:
                return await self._append_event(interaction_id, kind, ok=ok, data=data, **kw)
            except DB_UNAVAILABLE as e:
                log.warning("interaction %s: database unavailable (%s); event %s goes to the outbox",
                            interaction_id, type(e).__name__, kind)
        await self._put(interaction_id, {"op": "event", "kind": kind, "ok": ok,
                                         "data": {k: _jsonable(v) for k, v in dict(data or {}).items()}})
        return None
