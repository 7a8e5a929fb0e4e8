"""Interaction writes that survive a database outage (issue 18).

While PostgreSQL cannot be reached, the store's interaction writes go to the outbox (outbox.py)
instead of failing, and are written in order once it is back:

- opening an interaction: each process keeps a block of interaction ids reserved from the
  database's sequence while it is up (`IdBlock`, refilled in the background), so a call that
  arrives during the outage still gets its id, is routed as usual (routing state is in Redis) and
  its `open` goes to the outbox; the caller, unidentified now, is identified by the phone number
  when the row is written;
- state changes, timeline events, IVR path / recording updates, customer links;
- the wrap-up (disposition and notes), a ticket opened at wrap-up (its id reserved the same way),
  the satisfaction survey.

After the first buffered write of an interaction, its later writes go to the outbox too, so they
stay in order (one interaction's writes share one outbox partition). A process writing to an
interaction another process buffered (a survey taken there, a call handed over) sees its `held`
marker in Redis (looked up while the outbox has a backlog, or when the database says the
interaction is missing or the transition not allowed yet) and queues that write and its later
ones behind the entries.

Reads on the call path (identify, the pop's card, an interaction) raise `CrmUnavailable` (a
CrmError: the voice path logs it and goes on) instead of a driver error; a caller identified (or
a card read) by this process before the outage is answered from memory (the last 2,000 of each).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from callcenter.scaleout.outbox import Outbox
from crm_core._base import UNSET
from crm_core.errors import CrmError, InvalidTransition, NotFound, UnknownValue, ValidationError

log = logging.getLogger(__name__)
DB_UNAVAILABLE = (OperationalError, DBAPIError, OSError, TimeoutError)
HELD_S = 7 * 86400  # how long a `held` marker lives (the outbox is written long before)


class CrmUnavailable(CrmError):
    """The CRM database cannot be reached now (the write, if any, is buffered in the outbox)."""


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _events(events: Any) -> list[list[Any]]:
    return [[str(k), _jsonable(dict(d or {}))] for k, d in events or ()]


class IdBlock:
    """Ids reserved from a PostgreSQL sequence (the `id` column's) while the database is up, for
    rows written later through the outbox. Unused ids are only a gap in the numbering."""

    def __init__(self, db: Any, table: str, size: int = 100) -> None:
        self.db, self.table, self.size = db, table, size
        self.ids: deque[int] = deque()
        self.low = max(1, size // 2)
        self.want = asyncio.Event()
        self.want.set()

    async def fill(self) -> int:
        n = self.size - len(self.ids)
        if n <= 0:
            return 0
        async with self.db.session() as s, s.begin():
            got = (await s.execute(text(
                "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": self.table, "n": n})).scalars().all()
        self.ids.extend(int(x) for x in got)
        return len(got)

    def take(self) -> int | None:
        iid = self.ids.popleft() if self.ids else None
        if len(self.ids) < self.low:
            self.want.set()
        return iid

    async def run(self, retry_s: float = 0.5, max_retry_s: float = 5.0) -> None:
        """Refill whenever the block runs low; while the database is down, retry with back-off."""
        delay = retry_s
        while True:
            await self.want.wait()
            try:
                await self.fill()
                self.want.clear()
                delay = retry_s
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the database is away: try again later
                log.debug("could not reserve %s ids (%s)", self.table, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_retry_s)


class BufferedWrites:
    def __init__(self, store: Any, outbox: Outbox, *, reserve: int = 500, reserve_tickets: int = 50) -> None:
        self.store, self.outbox = store, outbox
        # interactions with writes in the outbox (this process), oldest first; past MAX_BUFFERED
        # the oldest are forgotten (their held markers still keep later writes in order)
        self.buffered: dict[int, None] = {}
        self.count = 0
        # outbox entries not written yet, center-wide (read every second): while there are, a
        # write to an interaction another process buffered goes behind its entries
        self.backlog = 0
        store.crm_unavailable = False  # as last seen (the pop says "CRM unavailable" while it is)
        pg = not getattr(store.db, "is_sqlite", True)
        self.ids = IdBlock(store.db, "interactions", reserve) if pg and reserve else None
        self.ticket_ids = IdBlock(store.db, "tickets", reserve_tickets) if pg and reserve_tickets else None
        self._dispositions: dict[bool, Any] = {}  # the last list read (a console opened during an outage)
        # the last callers identified and cards read: during an outage a recent caller is still
        # recognized (tier for routing, the pop's card as last read)
        self._known: dict[str, OrderedDict[str, Any]] = {n: OrderedDict() for n in self.REMEMBERED}
        self.orig: dict[str, Any] = {}

    WRITES = ("open_interaction", "set_state", "append_event", "update_interaction", "link_customer",
              "set_disposition", "record_survey", "create_ticket")
    READS = ("identify", "identify_card", "customer_card", "get_interaction", "find_interaction",
             "get_ticket", "timeline")

    REMEMBERED = ("identify", "identify_card", "customer_card")
    KNOWN = 2000  # results remembered per read
    MAX_BUFFERED = 100_000

    def install(self) -> None:
        for name in (*self.WRITES, "list_disposition_codes"):
            self.orig[name] = getattr(self.store, name)
            setattr(self.store, name, getattr(self, name))
        for name in self.READS:
            self.orig[name] = getattr(self.store, name)
            setattr(self.store, name, self._read(name, self.orig[name]))
        self.outbox.store = self.store  # the writer identifies callers and refreshes activity with it
        self.outbox.background.append(self.run)  # the ids stay reserved while this process writes

    async def run(self) -> None:
        """Keeps the reserved ids topped up, and watches the outbox's backlog (runs with the
        process's OutboxWorker)."""
        await asyncio.gather(self._watch(), *(b.run() for b in (self.ids, self.ticket_ids) if b is not None))

    async def _watch(self, every_s: float = 1.0) -> None:
        while True:
            try:
                self.backlog = await self.outbox.backlog()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis away: assume entries may be waiting
                self.backlog = max(self.backlog, 1)
            await asyncio.sleep(every_s)

    # ---- plumbing ----------------------------------------------------------------------------
    def _held_key(self, iid: int) -> str:
        return f"{self.outbox.prefix}outbox:held:{iid}"

    async def _put(self, iid: int, op: dict[str, Any]) -> None:
        if iid not in self.buffered:
            self._remember(iid)
            await self.outbox.client.set(self._held_key(iid), "1", ex=HELD_S)
        self.count += 1
        await self.outbox.put({"interaction_id": iid, "key": f"i{iid}",
                               "at": datetime.now(UTC).isoformat(), **op})

    def _remember(self, iid: int) -> None:
        self.buffered[iid] = None
        if len(self.buffered) > self.MAX_BUFFERED:
            for old in list(self.buffered)[: self.MAX_BUFFERED // 2]:
                del self.buffered[old]

    async def _held_elsewhere(self, iid: int) -> bool:
        with contextlib.suppress(Exception):
            return bool(await self.outbox.client.exists(self._held_key(iid)))
        return False

    async def _write(self, name: str, iid: int, op: dict[str, Any], *args: Any,
                     check: Any = None, **kw: Any) -> Any:
        """The store's write `name` directly, else (database away, or the interaction still in the
        outbox) `op` to the outbox, once `check()` (what the store would refuse) passes.
        Returns the store's result, or None when buffered."""
        if iid not in self.buffered and self.backlog and await self._held_elsewhere(iid):
            self._remember(iid)
        if iid not in self.buffered:
            try:
                got = await self.orig[name](*args, **kw)
                self.store.crm_unavailable = False
                return got
            except DB_UNAVAILABLE as e:
                self.store.crm_unavailable = True
                log.warning("interaction %s: database unavailable (%s); %s goes to the outbox",
                            iid, type(e).__name__, op.get("kind") or op.get("state") or op["op"])
            except (NotFound, InvalidTransition) as e:
                # another process's writes of it may still be in the outbox (not written yet, or
                # its earlier states): queue this one behind them
                if getattr(e, "entity", "Interaction") != "Interaction" \
                        or not await self._held_elsewhere(iid):
                    raise
                log.info("interaction %s: its writes are still in the outbox; %s queued behind them",
                         iid, op["op"])
        if check is not None:
            check()
        await self._put(iid, op)
        return None

    def _read(self, name: str, fn: Any) -> Any:
        known = self._known.get(name)

        async def read(*args: Any, **kw: Any) -> Any:
            key = repr((args, sorted(kw.items()))) if known is not None else ""
            try:
                got = await fn(*args, **kw)
                self.store.crm_unavailable = False
            except DB_UNAVAILABLE as e:
                self.store.crm_unavailable = True
                if known is not None and key in known:  # what was known before the outage
                    known.move_to_end(key)
                    return known[key]
                raise CrmUnavailable(f"CRM unavailable ({type(e).__name__}); try again shortly") from e
            if known is not None and got is not None:
                known[key] = got
                if len(known) > self.KNOWN:
                    known.popitem(last=False)
            return got
        read.__name__ = name
        return read

    # ---- writes ------------------------------------------------------------------------------
    async def open_interaction(self, channel: str, direction: str, customer_id: int | None = None,
                               **kw: Any) -> Any:
        try:
            got = await self.orig["open_interaction"](channel, direction, customer_id, **kw)
            self.store.crm_unavailable = False
            return got
        except DB_UNAVAILABLE as e:
            self.store.crm_unavailable = True
            iid = self.ids.take() if self.ids is not None else None
            if iid is None:
                log.error("database unavailable (%s) and no interaction id reserved: not opened",
                          type(e).__name__)
                raise
            log.warning("database unavailable (%s); interaction %s opened through the outbox",
                        type(e).__name__, iid)
        when = kw.get("at") or datetime.now(UTC)
        phone = kw.get("from_address") if channel == "voice" else None
        email = kw.get("from_address") if channel == "email" else None
        lookup: list[Any] = []
        if customer_id is None and (phone or email):
            with contextlib.suppress(Exception):  # identified when written (the keys are pure)
                lookup = [list(k) for k in self.store._lookup_keys(phone, email, None)]
        op = {"op": "open", "channel": channel, "direction": direction, "customer_id": customer_id,
              "external_id": kw.get("external_id"), "from": kw.get("from_address"),
              "to": kw.get("to_address"), "queue": kw.get("queue"),
              "skills": _jsonable(dict(kw.get("skills") or {})),
              "ivr_path": _jsonable(list(kw.get("ivr_path") or [])), "state": kw.get("state", "new"),
              "at": when.isoformat(), "events": _events(kw.get("events")), "lookup": lookup}
        await self._put(iid, op)
        from crm_core.models import Interaction

        return Interaction(id=iid, channel=channel, direction=direction, state=op["state"],
                           customer_id=customer_id, external_id=op["external_id"], from_address=op["from"],
                           to_address=op["to"], queue=op["queue"], skills=op["skills"],
                           ivr_path=op["ivr_path"], escalation_steps=[], created_at=when, updated_at=when)

    async def set_state(self, interaction_id: int, state: str, *, at: datetime | None = None,
                        agent_id: Any = UNSET, queue: Any = UNSET, data: Any = None,
                        events: Any = ()) -> Any:
        op: dict[str, Any] = {"op": "state", "state": state, "data": _jsonable(dict(data or {})),
                              "events": _events(events)}
        if agent_id is not UNSET:
            op["agent_id"] = agent_id
        if queue is not UNSET:
            op["queue"] = queue
        if at is not None:
            op["at"] = at.isoformat()
        return await self._write("set_state", interaction_id, op, interaction_id, state, at=at,
                                 agent_id=agent_id, queue=queue, data=data, events=events)

    async def append_event(self, interaction_id: int, kind: str, ok: bool = True,
                           data: Any = None, **kw: Any) -> Any:
        op = {"op": "event", "kind": kind, "ok": ok, "data": _jsonable(dict(data or {}))}
        if kw.get("at") is not None:
            op["at"] = kw["at"].isoformat()
        return await self._write("append_event", interaction_id, op, interaction_id, kind, ok=ok,
                                 data=data, **kw)

    async def update_interaction(self, interaction_id: int, *, events: Any = (), **fields: Any) -> Any:
        op = {"op": "update", "fields": {k: _jsonable(v) for k, v in fields.items() if v is not UNSET},
              "events": _events(events)}
        return await self._write("update_interaction", interaction_id, op, interaction_id,
                                 events=events, **fields)

    async def link_customer(self, interaction_id: int, customer_id: int, *, events: Any = ()) -> Any:
        op = {"op": "link", "customer_id": customer_id, "events": _events(events)}
        return await self._write("link_customer", interaction_id, op, interaction_id, customer_id,
                                 events=events)

    async def set_disposition(self, interaction_id: int, code: str, notes: str | None = None, *,
                              agent_id: int | None = None, at: datetime | None = None) -> Any:
        from crm_core.normalize import check_text

        def check() -> None:  # refused now, not when written
            check_text(notes, self.store.rules.note_max_chars, "notes")
            known = self._dispositions.get(True)  # the active codes last read
            if known is not None and code not in {d.code for d in known}:
                raise UnknownValue("disposition code", code, [d.code for d in known])

        op = {"op": "disposition", "code": code, "notes": notes, "agent_id": agent_id}
        if at is not None:
            op["at"] = at.isoformat()
        return await self._write("set_disposition", interaction_id, op, interaction_id, code, notes,
                                 check=check, agent_id=agent_id, at=at)

    async def record_survey(self, score: int, *, interaction_id: int | None = None, **kw: Any) -> Any:
        r = self.store.rules
        if interaction_id is None:
            return await self.orig["record_survey"](score, **kw)
        if isinstance(score, bool) or not isinstance(score, int) or not r.csat_min <= score <= r.csat_max:
            raise ValidationError(f"CSAT score must be an integer {r.csat_min}..{r.csat_max}",
                                  field="score", value=score)
        op = {"op": "survey", "score": score, "customer_id": kw.get("customer_id"),
              "channel": kw.get("channel"), "comment": kw.get("comment"), "events": _events(kw.get("events"))}
        if kw.get("at") is not None:
            op["at"] = kw["at"].isoformat()
        return await self._write("record_survey", interaction_id, op, score, interaction_id=interaction_id,
                                 **kw)

    async def create_ticket(self, customer_id: int, type: str, subject: str, **kw: Any) -> Any:
        """A ticket opened at wrap-up during an outage: its id (and number) reserved, written
        through the outbox after the interaction's other writes."""
        ids = sorted(set(kw.get("interaction_ids") or ()))
        buffered = [i for i in ids if i in self.buffered]
        if not buffered:
            try:
                return await self.orig["create_ticket"](customer_id, type, subject, **kw)
            except DB_UNAVAILABLE as e:
                if not ids:
                    raise CrmUnavailable("CRM unavailable: the ticket cannot be opened now") from e
        return await self._ticket_later(customer_id, type, subject, (buffered or ids)[0], ids, kw)

    async def _ticket_later(self, customer_id: int, type_: str, subject: str, iid: int, ids: list[int],
                            kw: dict[str, Any]) -> Any:
        from crm_core.customers import ticket_number
        from crm_core.enums import TicketPriority, TicketType, Tier
        from crm_core.models import Ticket
        from crm_core.normalize import check_text, enum_value

        if kw.get("assignee_id") is not None or kw.get("escalation_queue") is not None:
            raise CrmUnavailable("CRM unavailable: the ticket cannot be opened now")
        ttype = enum_value(TicketType, type_, "type").value
        prio = enum_value(TicketPriority, kw.get("priority") or "normal", "priority").value
        if not isinstance(subject, str) or not subject.strip():
            raise ValidationError("a ticket needs a subject", field="subject", value=subject)
        subject = " ".join(subject.split())[:200]
        description = check_text(kw.get("description"), self.store.rules.note_max_chars, "description")
        tid = self.ticket_ids.take() if self.ticket_ids is not None else None
        if tid is None:
            raise CrmUnavailable("CRM unavailable: the ticket cannot be opened now")
        when = kw.get("at") or datetime.now(UTC)
        rules = self.store.rules
        sla = {t.value: rules.sla_due(ttype, t.value, when).isoformat() for t in Tier}
        await self._put(iid, {"op": "ticket", "ticket_id": tid, "customer_id": customer_id, "type": ttype,
                              "priority": prio, "subject": subject, "description": description,
                              "interaction_ids": ids, "sla": sla, "at": when.isoformat()})
        return Ticket(id=tid, number=ticket_number(tid), customer_id=customer_id, type=ttype, status="open",
                      priority=prio, subject=subject, description=description, created_at=when,
                      updated_at=when)

    # ---- reads -------------------------------------------------------------------------------
    async def list_disposition_codes(self, *, active_only: bool = False) -> Any:
        key = bool(active_only)
        try:
            got = await self.orig["list_disposition_codes"](active_only=active_only)
        except DB_UNAVAILABLE as e:
            if key in self._dispositions:
                return self._dispositions[key]
            raise CrmUnavailable(f"CRM unavailable ({type(e).__name__}); try again shortly") from e
        self._dispositions[key] = got
        return got
