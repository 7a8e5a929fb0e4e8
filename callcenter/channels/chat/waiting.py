"""Queue position and estimated wait for a waiting chat. Pure."""
from __future__ import annotations

import math
from collections.abc import Iterable


def positions(waiting: Iterable[tuple[str, str]]) -> dict[str, int]:
    """1-based position of each contact within its queue; `waiting` is (contact, queue) pairs,
    best first (the routing engine's order)."""
    seen: dict[str, int] = {}
    out: dict[str, int] = {}
    for cid, queue in waiting:
        seen[queue] = seen.get(queue, 0) + 1
        out[cid] = seen[queue]
    return out


def estimated_wait_s(position: int, capacity: int, handle_s: float) -> int | None:
    """Contacts ahead are served `capacity` at a time, each taking `handle_s` on average.
    None when no agent is signed in to take chats."""
    if capacity <= 0:
        return None
    rounds = math.ceil(position / capacity)
    return int(round((rounds - 1) * handle_s + handle_s / 2)) if position > 0 else 0
