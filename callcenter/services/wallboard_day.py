"""The wallboard's day, pure (no I/O, no clock of its own):

- `local_day` / `day_start`: the center's local day (`wallboard.timezone`), for the rebuild at
  start-up and the reset at local midnight;
- `replay`: today's stored interactions and their timelines turned back into wallboard_stats
  events, so a restarted process shows the day's figures again;
- `to_wire` / `from_wire`: wallboard_stats events as JSON for the other processes (scale-out),
  their times in epoch seconds (each process has its own monotonic time base).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.services import wallboard_stats as ws

FINAL = frozenset({"abandoned", "failed", "ended", "wrapup_done"})


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def local_day(epoch_s: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(epoch_s, tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of `day`, in UTC (a DST change at midnight resolves to the first instant)."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def next_midnight(epoch_s: float, tz: ZoneInfo) -> float:
    return day_start(local_day(epoch_s, tz) + timedelta(days=1), tz).timestamp()


# -- replay -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    """One stored interaction: its columns and its timeline as (kind, epoch seconds, data)."""

    id: int
    channel: str
    state: str
    queue: str | None = None
    customer_id: int | None = None
    queued_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    agent: str | None = None  # the routing agent id (username) of the last agent
    timeline: Sequence[tuple[str, float, dict[str, Any]]] = ()


def replay(interactions: Iterable[Stored]) -> list[ws.Event]:
    """Events in time order. A `queue` event starts a wait segment in its queue; `offer` names the
    agent; `answer` answers it; `abandon` ends it abandoned; `transfer` or `hangup`/`end` after an
    answer end it handled (a later `queue` is then a transfer, as live). An interaction with no
    `queue` event but a queue and a queued time (chat, email) is one segment from its columns. A
    final interaction whose segment is still open ends at its end (or last event)."""
    out: list[tuple[float, int, ws.Event]] = []
    n = 0

    def put(ev: ws.Event) -> None:
        nonlocal n
        out.append((ev.at, n, ev))
        n += 1

    for i in interactions:
        cid = str(i.id)
        cust = str(i.customer_id) if i.customer_id is not None else ""
        open_, answered, agent = False, False, i.agent
        last = i.queued_at or 0.0
        segments = [e for e in i.timeline if e[0] == "queue" and e[2].get("queue")]
        if segments:
            for kind, at, data in i.timeline:
                last = max(last, at)
                if kind == "queue" and data.get("queue"):
                    if open_ and not answered:
                        put(ws.Moved(cid, str(data["queue"]), at))
                    else:
                        put(ws.Queued(cid, str(data["queue"]), i.channel, at, customer_id=cust,
                                      interaction_id=i.id))
                    open_, answered = True, False
                elif not open_:
                    continue
                elif kind == "offer" and data.get("agent"):
                    agent = str(data["agent"])
                    put(ws.Offered(cid, agent, at))
                elif kind == "answer" and not answered and agent:
                    put(ws.Answered(cid, agent, at))
                    answered = True
                elif kind == "abandon" and not answered:
                    put(ws.Ended(cid, "abandoned", at))
                    open_ = False
                elif kind in ("transfer", "hangup", "end") and answered:
                    put(ws.Ended(cid, "handled", at))
                    open_ = answered = False
        elif i.queue and i.queued_at is not None:
            put(ws.Queued(cid, i.queue, i.channel, i.queued_at, customer_id=cust, interaction_id=i.id))
            open_ = True
            if i.answered_at is not None and agent:
                put(ws.Answered(cid, agent, i.answered_at))
                answered = True
            last = max(i.answered_at or 0.0, i.queued_at)
        if open_ and i.state in FINAL:
            at = i.ended_at if i.ended_at is not None else last
            put(ws.Ended(cid, "handled" if answered else "abandoned", max(at, last)))
    out.sort(key=lambda x: (x[0], x[1]))
    return [ev for _at, _n, ev in out]


# -- wire -------------------------------------------------------------------------------------
TYPES: dict[str, type] = {c.__name__: c for c in (ws.Queued, ws.Offered, ws.Requeued, ws.Answered,
                                                  ws.Moved, ws.Ended, ws.AgentState, ws.CustomerKnown)}


def to_wire(events: Iterable[ws.Event], offset: float) -> list[dict[str, Any]]:
    """`offset`: this process's event time -> epoch seconds."""
    out = []
    for ev in events:
        d = dataclasses.asdict(ev)
        if "at" in d:
            d["at"] += offset
        out.append({"t": type(ev).__name__, **d})
    return out


def from_wire(rows: Iterable[dict[str, Any]], offset: float) -> list[ws.Event]:
    """Back to events on this process's time base (`offset` as in `to_wire`); unknown rows are
    skipped."""
    out: list[ws.Event] = []
    for row in rows:
        cls = TYPES.get(str(row.get("t")))
        if cls is None:
            continue
        fields = {k: v for k, v in row.items() if k != "t"}
        if "at" in fields:
            fields["at"] = float(fields["at"]) - offset
        try:
            out.append(cls(**fields))
        except TypeError:
            continue
    return out
