"""Callbacks: outbound contacts scheduled for later, routed, offered, dialled and retried.

    scheduled (IVR, routing escalation, console) -> due: routed like a voice contact (skills)
      -> offer (kind callback, with the pop) -> the agent accepts -> Originate: the agent's
      phone, then the customer (the click-to-dial path) -> connected | failed attempt
      -> retried by policy (callback_policy.py) -> ... -> given up after max attempts

Each callback has one outbound interaction; every step and attempt is on its timeline. Time
comes from the injected UTC clock (`utc`); `tick()` routes the callbacks that are due (the
background loop calls it every `poll_s`; tests call it themselves with `poll_s=0`).

Several processes (scale-out, `center.scaleout`): a due callback is claimed in the database (one
process routes it). At start, callbacks left routing/offered are put back to wait only when no
other process of the center is alive (else they are theirs, in flight). Each process keeps the
callbacks it has in flight in Redis (``P cbs``: process -> contact ids); when a process is gone
(no fresh heartbeat), one other process (`recover`, every tick) puts its callbacks back to wait
and takes their contacts out of the shared routing state: they are routed again, once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.facade import MessageRefused, WebUser
from callcenter.services.callback_policy import (
    AGENT,
    CANCELLED,
    FAILED,
    GiveUp,
    RetryPolicy,
    counts,
    originate_outcome,
    outcome_of,
)
from crm_core.callbacks import Callback, CallbackStatus, CallbackStore
from crm_core.errors import CrmError, NotFound
from crm_core.normalize import normalize_phone
from routing import (
    AgentPresence,
    CallbackAccepted,
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactStatus,
    Decision,
    Ended,
    Offer,
    OfferAccepted,
    OfferCallback,
    OfferDeclined,
    Presence,
    Requeue,
    RoutingError,
    Tier,
)

log = logging.getLogger(__name__)
PREFIX = "cb-"  # routing contact ids of callbacks: cb-<callback id>-<random>
ROLES = frozenset({"agent", "supervisor", "admin"})


@dataclass
class Live:
    """A callback in the routing engine or being dialled (one per process)."""

    cb: Callback
    contact_id: str
    agent_id: str | None = None
    offer_id: str | None = None
    expires_at: str | None = None
    dial_status: str | None = None  # DialEnd to the customer (BUSY, NOANSWER, ...)
    originate_reason: str | None = None  # OriginateResponse Failure: the agent's phone
    answered: bool = False
    finished: bool = False  # the attempt's outcome is settled
    message: dict[str, Any] | None = None  # the offer as sent (sent again to a console that comes back)


class CallbackService:
    def __init__(self, center: Any, *, policy: RetryPolicy = RetryPolicy(),
                 per_queue: Mapping[str, RetryPolicy] | None = None, default_queue: str | None = None,
                 utc: Callable[[], datetime] = lambda: datetime.now(UTC), poll_s: float = 5.0,
                 offer_prompt: str = "cc-callback-offer", confirm_prompt: str = "cc-callback-confirm",
                 offer_timeout_s: float = 5.0) -> None:
        self.center = center
        self.crm = center.store
        self.store = CallbackStore(center.store.db)
        self.voice, self.runner, self.directory, self.hub = (center.voice, center.runner, center.directory,
                                                             center.hub)
        self.policy = policy
        self.per_queue = dict(per_queue or {})
        self.default_queue = default_queue or center.voice.options.default_queue
        self.utc = utc
        self.poll_s = poll_s
        self.offer_prompt, self.confirm_prompt = offer_prompt, confirm_prompt
        self.offer_timeout_s = offer_timeout_s
        self.live: dict[str, Live] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticking = asyncio.Lock()
        self._watching: dict[int, tuple[Live, Any]] = {}  # interaction -> the attempt it watches
        self.scaleout_expected = False  # install(): scale-out is on, `center.scaleout` comes later

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.poll_s > 0 and self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        first = True
        while True:
            try:
                if first:
                    first = not await self.startup_reset()
                await self.recover()
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the scheduler must outlive one bad tick
                log.exception("callback tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def close(self) -> None:
        for task in [self._loop, *self._tasks]:
            if task is not None:
                task.cancel()
        pending = [t for t in [self._loop, *self._tasks] if t is not None]
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    # ------------------------------------------------------------------ several processes
    def _shared(self) -> Any:
        return getattr(self.center, "scaleout", None)

    async def startup_reset(self) -> bool:
        """Callbacks left routing/offered wait again, unless other processes of the center are
        alive (they hold those). False: not done yet (scale-out still starting)."""
        if self.scaleout_expected and self._shared() is None:
            return False
        so = self._shared()
        if so is not None and await so.others():
            log.info("callbacks in flight are left to the other processes of the center")
            return True
        await self.store.reset_in_flight()
        return True

    async def _track(self) -> None:
        """Scale-out: this process's callbacks in flight, for `recover` if it dies."""
        so = self._shared()
        if so is None:
            return
        try:
            if self.live:
                await so.client.hset(f"{so.prefix}cbs", so.origin, json.dumps(sorted(self.live)))
            else:
                await so.client.hdel(f"{so.prefix}cbs", so.origin)
        except Exception as e:  # noqa: BLE001 - Redis away: tracked at the next tick
            log.warning("callbacks in flight not tracked (%s)", e)

    async def recover(self) -> int:
        """Scale-out: the callbacks in flight on processes that are gone wait again (one process
        of the center does it); returns how many."""
        so = self._shared()
        if so is None:
            return 0
        key, now, n = f"{so.prefix}cbs", time.time(), 0
        beats = {_s(k): float(v) for k, v in (await so.client.hgetall(so.procs_key)).items()}
        for k, v in (await so.client.hgetall(key)).items():
            origin = _s(k)
            if origin == so.origin or now - beats.get(origin, 0.0) < so.dead_after_s:
                continue
            if not await so.claim_once(f"cbs-recover:{origin}", ttl_s=so.dead_after_s):
                continue
            for cid in json.loads(v):
                parts = cid.split("-")
                if len(parts) != 3 or not parts[1].isdigit():
                    continue
                cb_id = int(parts[1])
                back = False
                for status in (CallbackStatus.ROUTING.value, CallbackStatus.OFFERED.value):
                    back = back or await self.store.claim(cb_id, CallbackStatus.SCHEDULED.value,
                                                          expect=status)
                try:  # out of the shared routing state (its process will not finish it)
                    await self.runner.handle(ContactHungUp(cid))
                except RoutingError:
                    pass
                if back:
                    cb = await self.store.get(cb_id)
                    await self.crm.append_event(cb.interaction_id, "callback_owner_lost", ok=False, data={
                        "callback_id": cb_id, "process": origin,
                        "detail": "the process routing it is gone; it waits to be routed again"})
                    n += 1
            await so.client.hdel(key, origin)
        if n:
            log.info("%d callbacks of processes that are gone wait again", n)
            self._wake.set()
        return n

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("callback task failed", exc_info=task.exception())

    def policy_for(self, queue: str) -> RetryPolicy:
        return self.per_queue.get(queue, self.policy)

    # ------------------------------------------------------------------ scheduling
    async def schedule(self, *, number: str, origin: str, queue: str | None = None,
                       due_at: datetime | None = None, customer_id: int | None = None,
                       skills: Mapping[str, int] | None = None, origin_interaction_id: int | None = None,
                       requested_by: int | None = None, by: str = "system",
                       note: str | None = None) -> Callback:
        """Open the callback's outbound interaction and store the callback (due now by default)."""
        queue = queue or self.default_queue
        if queue not in self.runner.engine.config.queues:
            raise MessageRefused("invalid", f"unknown queue {queue!r}")
        if not skills:
            skills = dict(self.voice.options.queue_skills.get(queue, {}))
        due = due_at or self.utc()
        policy = self.policy_for(queue)
        interaction = await self.crm.open_interaction(
            "voice", "outbound", customer_id, to_address=number, queue=queue, skills=dict(skills),
            state="queued")
        cb = await self.store.schedule(
            number=number, queue=queue, due_at=due, interaction_id=interaction.id, origin=origin,
            max_attempts=policy.max_attempts, skills=dict(skills), customer_id=customer_id,
            origin_interaction_id=origin_interaction_id, requested_by=requested_by, note=note)
        await self.crm.append_event(interaction.id, "callback_scheduled", data={
            "callback_id": cb.id, "origin": origin, "by": by, "number": number, "queue": queue,
            "due_at": due.isoformat(), "max_attempts": cb.max_attempts,
            **({"from_interaction": origin_interaction_id} if origin_interaction_id else {}),
            **({"note": note} if note else {})})
        self._wake.set()
        return cb

    async def from_ivr(self, call: Any, result: Any) -> None:
        """The IVR's callback step: call the number the caller confirmed or keyed in, ASAP."""
        number = self._number(str(result.number), call.caller)
        if number is None:
            await self.crm.append_event(call.interaction_id, "callback_scheduled", ok=False, data={
                "error": "not a valid phone number", "digits": str(result.number)[-4:]})
            return
        queue = result.queue if result.queue in self.runner.engine.config.queues else None  # else default
        try:
            cb = await self.schedule(number=number, origin="ivr", queue=queue,
                                     customer_id=call.customer_id, origin_interaction_id=call.interaction_id,
                                     by="ivr")
        except (MessageRefused, CrmError) as e:
            await self.crm.append_event(call.interaction_id, "callback_scheduled", ok=False,
                                        data={"error": str(e)})
            return
        except Exception as e:  # noqa: BLE001 - the database is down: logged, the call still ends cleanly
            log.exception("could not schedule the IVR callback of interaction %s", call.interaction_id)
            try:
                await self.crm.append_event(call.interaction_id, "callback_scheduled", ok=False,
                                            data={"error": type(e).__name__})
            except Exception:  # noqa: BLE001
                pass
            return
        await self.crm.append_event(call.interaction_id, "callback_scheduled", data={
            "callback_id": cb.id, "callback_interaction": cb.interaction_id, "number": number})

    def _number(self, digits: str, caller: str | None) -> str | None:
        if caller and caller.lstrip("+").endswith(digits.lstrip("+")) and len(digits) >= 7:
            return caller
        raw = digits if digits.startswith("+") else (f"+{digits}" if len(digits) > 10 else digits)
        return _valid_phone(raw, self.crm.default_region)

    # ------------------------------------------------------------------ the scheduler
    async def tick(self) -> int:
        """Route every callback whose time has come; returns how many."""
        async with self._ticking:
            self.prune()
            n = 0
            for cb in await self.store.due(self.utc()):
                if not await self.store.claim(cb.id, CallbackStatus.ROUTING.value,
                                              expect=CallbackStatus.SCHEDULED.value):
                    continue  # another process took it, or it was cancelled
                await self._route(cb)
                n += 1
            await self._track()
            return n

    async def _route(self, cb: Callback) -> None:
        cid = f"{PREFIX}{cb.id}-{secrets.token_hex(4)}"  # unique across processes and attempts
        live = Live(cb, cid)
        self.live[cid] = live
        await self._track()
        tier = Tier.REGULAR
        if cb.customer_id is not None:
            try:
                tier = Tier((await self.crm.get_customer(cb.customer_id)).tier)
            except (CrmError, ValueError):
                pass
        await self.crm.append_event(cb.interaction_id, "callback_due", data={
            "callback_id": cb.id, "attempt": cb.attempts + 1, "queue": cb.queue, "skills": cb.skills})
        contact = Contact(cid, Channel.VOICE, cb.queue, self.runner.clock(),
                          customer_id=str(cb.customer_id or ""), tier=tier, skills=cb.skills)
        try:
            await self.runner.handle(ContactArrived(contact))
        except RoutingError as e:
            self.live.pop(cid, None)
            await self._refused(cb.interaction_id, e)
            await self._settle(live, FAILED, f"routing refused: {e}")

    async def _adopt(self, cid: str) -> Live | None:
        """A callback another process routed (shared routing state): this one performs it now."""
        parts = cid.split("-")
        if not cid.startswith(PREFIX) or len(parts) != 3 or not parts[1].isdigit():
            return None
        try:
            cb = await self.store.get(int(parts[1]))
        except CrmError:
            return None
        live = self.live[cid] = Live(cb, cid)
        self._spawn(self._track())
        return live

    async def _set_state(self, interaction_id: int, state: str, **kw: Any) -> None:
        """The interaction's state with its timeline events; a refused transition is logged and
        the events are kept (never raised into the routing runner)."""
        try:
            await self.crm.set_state(interaction_id, state, **kw)
        except CrmError as e:
            await self.crm.append_event(interaction_id, "state_failed", ok=False,
                                        data={"state": state, "error": str(e)})
            for kind, data in kw.get("events", ()):
                await self.crm.append_event(interaction_id, kind, data=data)

    async def _refused(self, interaction_id: int, e: Exception) -> None:
        await self.crm.append_event(interaction_id, "routing_refused", ok=False, data={"error": str(e)})

    # ------------------------------------------------------------------ routing decisions
    async def perform(self, decisions: list[Decision]) -> set[str]:
        """Decisions about callback contacts (and callback offers for queued voice callers).
        Runs under the routing runner's lock: anything that feeds the engine again is spawned."""
        touched: set[str] = set()
        for d in decisions:
            cid = getattr(d, "contact_id", "")
            if isinstance(d, OfferCallback) and cid.isdigit():
                call = self.voice.calls.get(int(cid))
                if call is not None:
                    self._spawn(self._offer_to_caller(call, d.queue))
                continue
            live = self.live.get(cid)
            if live is None and isinstance(d, Offer):
                live = await self._adopt(cid)
            if live is None:
                continue
            if isinstance(d, Offer):
                await self._offer(live, d)
            elif isinstance(d, Requeue):
                await self._withdrawn(live, d.reason)
            elif isinstance(d, Ended):
                if d.outcome is not ContactStatus.HANDLED and not live.finished:
                    self.live.pop(cid, None)
                    self._spawn(self._settle(live, AGENT, f"left the queue ({d.outcome.value})"))
            else:
                await self.crm.append_event(live.cb.interaction_id, type(d).__name__.lower(),
                                            data={"detail": str(getattr(d, "detail", "") or "")})
            agent = getattr(d, "agent_id", None)
            if agent:
                touched.add(agent)
        return touched

    async def _offer(self, live: Live, d: Offer) -> None:
        agent = self.directory.agents.get(d.agent_id)
        if agent is None:
            return
        cb = live.cb
        live.agent_id, live.offer_id = d.agent_id, secrets.token_urlsafe(9)
        lease = max(0.0, d.lease_until - self.runner.clock())
        live.expires_at = (datetime.now(UTC) + timedelta(seconds=lease)).isoformat()
        reasons = [{"name": p.name, "value": p.value, "note": p.note} for p in d.reasons]
        await self.store.update(cb.id, status=CallbackStatus.OFFERED.value)
        await self._set_state(cb.interaction_id, "offered", agent_id=agent.user_id, events=(
            ("offer", {"agent": agent.username, "reasons": reasons, "callback_id": cb.id}),))
        card = None
        if cb.customer_id is not None:
            try:
                card = (await self.crm.customer_card(cb.customer_id)).to_dict()
            except CrmError:
                card = None
        message = {
            "offer_id": live.offer_id, "interaction_id": cb.interaction_id, "channel": "voice",
            "queue": cb.queue, "caller": cb.number, "pop": {"known": card is not None, "card": card},
            "ivr_path": [], "reasons": reasons, "expires_at": live.expires_at, "kind": "callback",
            "callback": {"callback_id": cb.id, "number": cb.number, "attempt": cb.attempts + 1,
                         "max_attempts": cb.max_attempts, "origin": cb.origin, "note": cb.note,
                         "last_outcome": cb.last_outcome}}
        live.message = message
        if not self.hub.send(agent.user_id, "offer", **message):
            await self.crm.append_event(cb.interaction_id, "offer_undelivered", ok=False,
                                        data={"agent": agent.username})
            self._spawn(self._decline(live, no_answer=False))

    async def _withdrawn(self, live: Live, reason: str) -> None:
        cb, agent = live.cb, self.directory.agents.get(live.agent_id or "")
        offer_id = live.offer_id
        live.agent_id = live.offer_id = None
        await self.store.update(cb.id, status=CallbackStatus.ROUTING.value)
        await self._set_state(cb.interaction_id, "queued", events=(
            ("requeue", {"reason": reason, "agent": agent.username if agent else None}),))
        if agent is not None and offer_id is not None:
            self.hub.send(agent.user_id, "offer_withdrawn", offer_id=offer_id,
                          interaction_id=cb.interaction_id,
                          reason="no_answer" if reason == "no-answer" else "declined")

    def by_offer(self, user_id: int, offer_id: str) -> Live | None:
        for live in self.live.values():
            if live.offer_id == offer_id and live.agent_id == str(user_id):
                return live
        return None

    async def _decline(self, live: Live, *, no_answer: bool) -> None:
        if live.agent_id is None:
            return
        try:
            await self.runner.handle(OfferDeclined(live.contact_id, live.agent_id, no_answer=no_answer))
        except RoutingError as e:
            await self._refused(live.cb.interaction_id, e)

    async def console_connected(self, user: WebUser, link: Any) -> None:
        """A console that comes back gets its pending callback offer again."""
        from callcenter.facade import PROTOCOL_VERSION

        for live in list(self.live.values()):
            if live.agent_id == str(user.id) and live.offer_id is not None and live.message is not None:
                link.put({"type": "offer", "v": PROTOCOL_VERSION, **live.message})

    # ------------------------------------------------------------------ the agent accepts: dial
    async def accept(self, user: WebUser, offer_id: str) -> None:
        live = self.by_offer(user.id, offer_id)
        agent = self.directory.by_user(user.id)
        if live is None or agent is None:
            raise MessageRefused("not_found", "no such callback offer")
        cb = live.cb
        await self.runner.handle(OfferAccepted(live.contact_id, agent.agent_id))
        live.offer_id = None
        await self.store.update(cb.id, status=CallbackStatus.DIALING.value)
        await self.crm.append_event(cb.interaction_id, "callback_attempt", data={
            "callback_id": cb.id, "attempt": cb.attempts + 1, "max_attempts": cb.max_attempts,
            "agent": agent.username, "number": cb.number})

        def watch(call: Any, kind: str, data: dict[str, Any]) -> Awaitable[bool]:
            return self._watch(live, kind, data)

        self.voice.watchers[cb.interaction_id] = watch
        self._watching[cb.interaction_id] = (live, watch)
        try:
            await self.voice.dial(agent, cb.number, cb.customer_id, interaction_id=cb.interaction_id,
                                  routed=True)
        except MessageRefused as e:
            if not live.finished:  # refused before the PBX was asked (no phone, busy console)
                self.voice.watchers.pop(cb.interaction_id, None)
                await self.crm.append_event(cb.interaction_id, "dial", ok=False, data={"error": str(e)})
                await self._settle(live, AGENT, str(e))  # the agent's problem, not the customer's
            raise

    async def _watch(self, live: Live, kind: str, data: dict[str, Any]) -> bool:
        """Sees the attempt's timeline events and states from the voice service. A call that never
        reached the customer is not ended or failed in the store: it is retried (or given up)."""
        if kind == "dial" and not data.get("ok", True):
            live.dial_status = data.get("dial_status") or live.dial_status
            if data.get("code") is not None:
                live.originate_reason = str(data["code"])
            return True
        if kind == "state:answered":
            live.answered = True
            await self.store.update(live.cb.id, status=CallbackStatus.CONNECTED.value,
                                    attempts=live.cb.attempts + 1, last_outcome="answered")
            await self.crm.append_event(live.cb.interaction_id, "callback_connected", data={
                "callback_id": live.cb.id, "attempt": live.cb.attempts + 1})
            self._state_message(live, "connected", None)
            return True
        if live.answered and (kind == "state:ended" or (
                kind in ("transfer", "escalate", "complete") and data.get("ok", True))
                or (kind == "conference_leave" and data.get("role") == "agent")):
            # the call ended, or this agent handed it on (it goes on without the callback's
            # routing contact): the agent's wrap-up starts, the voice service has the rest
            self.voice.watchers.pop(live.cb.interaction_id, None)
            self._watching.pop(live.cb.interaction_id, None)
            live.finished = True
            self.live.pop(live.contact_id, None)
            if live.agent_id is not None:
                try:
                    await self.runner.handle(ContactFinished(live.contact_id, live.agent_id,
                                                             self.voice.options.wrapup_s))
                except RoutingError as e:
                    await self.crm.append_event(live.cb.interaction_id, "routing_refused", ok=False,
                                                data={"error": str(e)})
            return True
        if kind.startswith("state:") and not live.answered:
            # ended, failed or wrapup_done of an attempt that never reached the customer (the
            # Originate's failure and the agent leg's hang-up arrive in either order): retried,
            # never stored; the watcher stays until the next attempt so that no late one is stored
            if not live.finished:
                await self._settle(live, *_outcome(live, kind))
            return False
        return True

    def prune(self) -> None:
        """Forget the watchers of settled attempts whose call the voice service forgot too."""
        for iid, (live, fn) in list(self._watching.items()):
            if live.finished and iid not in self.voice.calls:
                del self._watching[iid]
                if self.voice.watchers.get(iid) is fn:
                    self.voice.watchers.pop(iid, None)

    async def _settle(self, live: Live, outcome: str, detail: str) -> None:
        """An attempt that did not reach the customer: free the agent, then retry or give up."""
        live.finished = True
        self.live.pop(live.contact_id, None)
        cb = await self.store.get(live.cb.id)
        if live.agent_id is not None and (live.offer_id is None):
            try:
                await self.runner.handle(ContactFinished(live.contact_id, live.agent_id, 0.0))
                if outcome == AGENT:  # their phone did not take the call: not ready, as after a RONA
                    await self.runner.handle(AgentPresence(live.agent_id, Presence.NOT_READY, "no-answer"))
            except RoutingError:
                pass  # it never got as far as the agent
        attempts = cb.attempts + (1 if counts(outcome) else 0)
        step = self.policy_for(cb.queue).after(attempts=attempts, outcome=outcome, now=self.utc(),
                                               max_attempts=cb.max_attempts)
        if isinstance(step, GiveUp):
            await self.store.update(cb.id, status=CallbackStatus.FAILED.value, attempts=attempts,
                                    last_outcome=outcome)
            await self.crm.set_state(cb.interaction_id, "failed", events=(("callback_given_up", {
                "callback_id": cb.id, "attempts": attempts, "outcome": outcome, "detail": detail}),))
            self._state_message(live, "failed", outcome, attempts=attempts)
        else:
            await self.store.update(cb.id, status=CallbackStatus.SCHEDULED.value, attempts=attempts,
                                    last_outcome=outcome, due_at=step.at)
            try:
                await self.crm.set_state(cb.interaction_id, "queued")
            except CrmError:
                pass  # still queued (it never reached an agent)
            await self.crm.append_event(cb.interaction_id, "callback_retry", ok=False, data={
                "callback_id": cb.id, "attempts": attempts, "outcome": outcome, "detail": detail,
                "next_at": step.at.isoformat(), "delay_s": step.delay_s})
            self._state_message(live, "retry", outcome, attempts=attempts, next_at=step.at.isoformat())
        if live.agent_id is not None:
            self.directory.push_state(live.agent_id)
        self._wake.set()

    def _state_message(self, live: Live, state: str, outcome: str | None, *, attempts: int | None = None,
                       next_at: str | None = None) -> None:
        agent = self.directory.agents.get(live.agent_id or "")
        if agent is None:
            return
        cb = live.cb
        self.hub.send(agent.user_id, "callback_state", callback_id=cb.id, interaction_id=cb.interaction_id,
                      state=state, outcome=outcome,
                      attempts=cb.attempts + 1 if attempts is None else attempts,
                      max_attempts=cb.max_attempts, next_at=next_at)

    # ------------------------------------------------------------------ a queued caller is offered one
    async def _offer_to_caller(self, call: Any, queue: str) -> None:
        """Routing escalation offered a callback: ask the waiting caller (press 1); if they take
        it, the contact leaves the queue, the call ends, and a callback is scheduled."""
        from callcenter.asterisk.fastagi import AgiCommandError as AgiError

        session = call.session
        if session is None or not call.caller or call.state != "queued":
            return
        await self.crm.append_event(call.interaction_id, "callback_offered", data={"queue": queue})
        try:
            r = await session.get_data(self.offer_prompt, int(self.offer_timeout_s * 1000), 1)
        except AgiError:
            return
        taken = r.digits == "1" and call.state == "queued" and call.assigned is not None \
            and not call.assigned.done()
        if not taken:
            await self.crm.append_event(call.interaction_id, "callback_declined", ok=False,
                                        data={"digits": r.digits or ""})
            if call.state == "queued":
                try:
                    await session.set_music(True)
                except AgiError:
                    pass
            return
        try:
            await self.runner.handle(CallbackAccepted(call.contact_id))
        except RoutingError as e:
            await self._refused(call.interaction_id, e)
            return
        try:
            cb = await self.schedule(number=call.caller, origin="escalation", queue=call.queue,
                                     customer_id=call.customer_id, origin_interaction_id=call.interaction_id,
                                     by="routing escalation")
            await self.crm.append_event(call.interaction_id, "callback_scheduled", data={
                "callback_id": cb.id, "callback_interaction": cb.interaction_id, "number": call.caller})
            try:
                await session.stream_file(self.confirm_prompt)
            except AgiError:
                pass
        finally:
            if call.assigned is not None and not call.assigned.done():
                call.assigned.set_result(None)  # the voice service ends the call

    # ------------------------------------------------------------------ console messages
    async def msg_accept(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.accept(user, str(msg.get("offer_id")))

    async def msg_schedule(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any]:
        """An agent or supervisor schedules a callback for a customer (or a number)."""
        if not set(user.roles) & ROLES:
            raise MessageRefused("forbidden", "only agents and supervisors schedule callbacks")
        cid, number = msg.get("customer_id"), msg.get("number")
        if isinstance(cid, int):
            try:
                card = await self.crm.customer_card(cid)
            except NotFound:
                raise MessageRefused("not_found", f"no customer {cid}") from None
            phones = [p.value for p in card.contact_points if p.kind == "phone"]
            if number is None:
                if not phones:
                    raise MessageRefused("invalid", "that customer has no phone number")
                number = phones[0]
        if not isinstance(number, str) or _valid_phone(number, self.crm.default_region) is None:
            raise MessageRefused("invalid", "not a valid phone number")
        at = self.utc()
        if msg.get("at") is not None:
            try:
                at = datetime.fromisoformat(str(msg["at"]).replace("Z", "+00:00"))
            except ValueError:
                raise MessageRefused("invalid", "at must be an ISO 8601 time") from None
            if at.tzinfo is None:
                raise MessageRefused("invalid", "at must say its time zone (UTC)")
            if at > self.utc() + timedelta(days=365):
                raise MessageRefused("invalid", "a callback is at most a year ahead")
        note = msg.get("note")
        cb = await self.schedule(number=number, origin="console", queue=msg.get("queue") or None, due_at=at,
                                 customer_id=cid if isinstance(cid, int) else None, requested_by=user.id,
                                 by=user.username,
                                 note=note if isinstance(note, str) and note.strip() else None)
        return {"type": "callback_scheduled", "callback_id": cb.id, "interaction_id": cb.interaction_id,
                "customer_id": cb.customer_id, "number": cb.number, "queue": cb.queue,
                "due_at": cb.due_at.isoformat(), "max_attempts": cb.max_attempts}


def retry_policies(conf: Any) -> tuple[RetryPolicy, dict[str, RetryPolicy]]:
    """The default retry policy and the per-queue ones from `settings.callbacks` (a queue's
    entry overrides the default's max_attempts and the delays it names)."""
    default = RetryPolicy(conf.max_attempts, {**conf.retry_s})
    return default, {q: RetryPolicy(p.max_attempts or conf.max_attempts, {**conf.retry_s, **p.retry_s})
                     for q, p in conf.queues.items()}


def install(center: Any, settings: Any = None, *,
            utc: Callable[[], datetime] | None = None) -> CallbackService:
    """Build the service from `settings.callbacks`, register it with the center (routing
    decisions, IVR callback results, console messages) and start its scheduler."""
    conf = getattr(settings, "callbacks", None)
    kwargs: dict[str, Any] = {}
    if conf is not None:
        policy, per_queue = retry_policies(conf)
        kwargs = {"policy": policy, "per_queue": per_queue, "default_queue": conf.queue,
                  "poll_s": conf.poll_s, "offer_prompt": conf.offer_prompt,
                  "confirm_prompt": conf.confirm_prompt}
    if utc is not None:
        kwargs["utc"] = utc
    svc = CallbackService(center, **kwargs)
    so_conf = getattr(settings, "scaleout", None)
    svc.scaleout_expected = bool(so_conf is not None and so_conf.enabled and settings.redis.url)
    center.callbacks = svc
    center.performers.append(svc)
    center.voice.on_callback = svc.from_ivr
    center.on_console_connect.append(svc.console_connected)
    handlers = center.console.handlers
    ack, decline = handlers["ack_offer"], handlers["decline_offer"]

    async def ack_offer(user: WebUser, msg: dict[str, Any]) -> Any:
        live = svc.by_offer(user.id, str(msg.get("offer_id")))
        if live is None:
            return await ack(user, msg)
        await svc.crm.append_event(live.cb.interaction_id, "pop_ack", data={"offer_id": live.offer_id})
        return None  # a callback is placed when the agent accepts it, not when the pop shows

    async def decline_offer(user: WebUser, msg: dict[str, Any]) -> Any:
        live = svc.by_offer(user.id, str(msg.get("offer_id")))
        if live is None:
            return await decline(user, msg)
        await svc._decline(live, no_answer=False)
        return None

    handlers.update({"ack_offer": ack_offer, "decline_offer": decline_offer,
                     "accept_callback": svc.msg_accept, "schedule_callback": svc.msg_schedule})
    svc.start()
    return svc


def _outcome(live: Live, kind: str) -> tuple[str, str]:
    """The outcome of an attempt that never reached the customer, and a note for the timeline."""
    if live.originate_reason is not None:
        return originate_outcome(live.originate_reason), "the agent's phone did not take the call"
    if live.dial_status:
        return outcome_of(live.dial_status), f"dial status {live.dial_status}"
    if kind == "state:failed":
        return FAILED, "the PBX refused the call"
    return CANCELLED, "the agent hung up before the customer answered"


def _valid_phone(raw: str, region: str) -> str | None:
    """E.164 if `raw` is a valid phone number (in `region` when it has no country code)."""
    try:
        return normalize_phone(raw, region)
    except CrmError:
        return None


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
