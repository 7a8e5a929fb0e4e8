"""Voice calls end to end.

FastAGI drives the front of a call (identify, IVR, wait in queue, set the dial target) and AMI
events drive the rest (ringing, talking, hang-up). The routing engine decides who gets the call;
this module performs its decisions. Every step, failures included, lands on the interaction's
timeline, and the console hears about a state only when the PBX event that confirms it arrives.

    arrive -> identify -> ivr -> queue -> offer (pop) -> [ack] -> ring -> answer -> talk
           -> hang up -> wrap-up -> disposition
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from callcenter.asterisk.ami import Event as AmiEvent
from callcenter.asterisk.fastagi import AgiCommandError, AgiHangupError, AgiSession
from callcenter.facade import MessageRefused
from callcenter.ivr_agi import AgiIvrOptions, route_variables, run_flow
from callcenter.services.agents import Agent, AgentDirectory
from callcenter.services.consoles import ConsoleHub
from callcenter.services.routing_runner import RoutingRunner
from crm_core.errors import CrmError, NotFound
from crm_core.store import CrmStore
from ivr import Engine as FlowEngine
from routing import (
    AgentPresence,
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactStatus,
    Decision,
    Ended,
    OfferAccepted,
    OfferDeclined,
    Presence,
    RoutingError,
    Tier,
)
from routing import Offer as RoutingOffer

log = logging.getLogger(__name__)

AFTER_DIAL_PRIORITY = 3  # cc-route,s,after in the shipped extensions.conf
_EXTERNAL = re.compile(r"^\+?[0-9]{3,20}$")
LookupFn = Callable[..., Awaitable[Mapping[str, Any] | None]]
FALLBACK_EVENTS = ("QueueCallerJoin", "AgentConnect", "QueueCallerAbandon")


@dataclass
class PendingOffer:
    id: str
    agent_id: str
    reasons: list[dict[str, Any]]
    expires_at: str
    ack: asyncio.Event = field(default_factory=asyncio.Event)
    settled: bool = False  # answered, refused or withdrawn: nothing more to do for it
    message: dict[str, Any] | None = None  # the offer as sent, sent again to a resuming console


@dataclass
class VoiceCall:
    interaction_id: int
    linkedid: str
    caller: str
    customer_id: int | None = None
    tier: str = "regular"
    customer_name: str | None = None  # as identified (the wallboard shows it without a read)
    queue: str | None = None
    ivr_path: list[Any] = field(default_factory=list)
    state: str = "ivr"  # ivr, queued, offered, ringing, talking, wrapup, done
    queued_mono: float | None = None
    offer: PendingOffer | None = None
    pop_card: dict[str, Any] | None = None  # the card the offer showed (a resumed console gets it again)
    agent_id: str | None = None
    agent_leg: str | None = None  # uniqueid of the dialled agent channel
    assigned: asyncio.Future[Agent] | None = None
    routed: bool = False  # the routing engine knows this contact (until it Ended)
    state_at: str | None = None  # when the PBX confirmed the current ringing/talking/ended
    wrapup_until: str | None = None
    caller_channel: str | None = None  # channel names from DialBegin (for call controls)
    agent_channel: str | None = None
    pending: str | None = None  # a call control sent to the PBX, awaiting its confirming event
    transfer: dict[str, Any] | None = None  # a blind transfer under way (target, notes, from)
    released: asyncio.Event | None = None  # set when the PBX confirmed the transferring agent left
    handoff: dict[str, Any] | None = None  # shown in the next agent's pop: {from, notes}
    transferred: bool = False  # a transferring agent's wrap-up (the call itself went on)
    recording: str | None = None  # None, "recording" or "paused" (as the PBX confirmed it)
    recording_ref: str | None = None  # the file name under the recordings directory
    rec_pending: str | None = None  # start, pause or resume sent, awaiting MixMonitorStart/Stop
    consult: dict[str, Any] | None = None  # a warm transfer's consultation (target, leg, state)
    outside_routing: bool = False  # taken over by a consulted agent: the engine never offered it
    outbound: str | None = None  # click-to-dial: the number dialled (the agent's phone rings first)
    caller_uid: str | None = None  # the customer's channel when it is not the Linkedid (click-to-dial)
    session: Any = None  # the caller's FastAGI session while queued (a callback offer speaks on it)
    carrier: str = "asterisk"  # or "twilio": AMI events and resyncs concern only Asterisk calls

    @property
    def contact_id(self) -> str:
        return str(self.interaction_id)


@dataclass(frozen=True)
class VoiceOptions:
    default_queue: str = "general"
    ack_timeout_s: float = 3.0  # the dial waits this long for the console to show the pop
    wrapup_s: float = 120.0  # longest wrap-up before the engine makes the agent ready again
    survey: bool = True
    reconnect_grace_s: float = 3.0  # a console that comes back within this resumes its offer
    fallback_queue: str = "cc-fallback"  # the dialplan's plain queue when the AGI is unavailable
    external_dial: str = "PJSIP/{number}@trunk"  # dial string of a transfer to an external number
    queue_skills: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    record_queues: frozenset[str] = frozenset()  # queues whose answered calls are recorded
    recordings_dir: Path | None = None  # where MixMonitor writes (None: never record)


class Softphone:
    """Answers and hangs up simulated agent phones (the demo's soft-phone buttons)."""

    async def answer(self, extension: str) -> bool:
        raise NotImplementedError

    async def hangup(self, extension: str) -> bool:
        raise NotImplementedError


class VoiceService:
    def __init__(self, store: CrmStore, runner: RoutingRunner, directory: AgentDirectory,
                 hub: ConsoleHub, flow: FlowEngine, lookups: Mapping[str, LookupFn], *,
                 options: VoiceOptions = VoiceOptions(), mono: Callable[[], float] = time.monotonic,
                 ivr_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.runner = runner
        self.directory = directory
        self.hub = hub
        self.flow = flow
        self.lookups = lookups
        self.options = options
        self.mono = mono
        self.ivr_clock = ivr_clock
        self.calls: dict[int, VoiceCall] = {}
        self.by_linkedid: dict[str, VoiceCall] = {}
        self.softphone: Softphone | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fallback: dict[str, int] = {}  # linkedid -> interaction, for calls in the fallback queue
        self.ami: Any = None  # the AMI client (set by the telephony edge)
        self.wrapups: dict[str, VoiceCall] = {}  # agent -> wrap-up of a call they transferred away
        # interaction -> async watcher(call, kind, data) of its timeline events and states ("state:X");
        # a watcher that returns False for a state keeps it from the store (callbacks.py retries)
        self.watchers: dict[int, Callable[[VoiceCall, str, dict[str, Any]], Awaitable[bool]]] = {}
        self.on_callback: Callable[[VoiceCall, Any], Awaitable[None]] | None = None  # IVR callback result
        from callcenter.services.conference import ConferenceControl
        self.conference = ConferenceControl(self)  # warm transfer -> three-way conference

    def agi_handlers(self) -> dict[str, Callable[[AgiSession], Awaitable[None]]]:
        return {"ivr": self.agi_ivr, "after-dial": self.agi_after_dial, "survey": self.agi_survey}

    # ------------------------------------------------------------------ timeline
    async def _event(self, call: VoiceCall, kind: str, ok: bool = True, **data: Any) -> None:
        watcher = self.watchers.get(call.interaction_id)
        if watcher is not None:
            await watcher(call, kind, {"ok": ok, **data})
        try:
            await self.store.append_event(call.interaction_id, kind, ok=ok, data=data)
        except CrmError:
            log.exception("timeline append failed for interaction %s", call.interaction_id)

    async def _state(self, call: VoiceCall, state: str, *,
                     events: tuple[tuple[str, dict[str, Any]], ...] = (), **kw: Any) -> None:
        """Store the state; `events` go on the timeline in the same transaction (one trip)."""
        watcher = self.watchers.get(call.interaction_id)
        if watcher is not None and not await watcher(call, f"state:{state}", dict(kw)):
            return
        if call.handoff is not None and state in ("queued", "offered"):
            # routed again after a transfer: the interaction stays answered (the lifecycle has no
            # way back); the new queue and the steps go on the record, no state_failed noise
            if kw.get("queue") is not None:
                await _logged(self, call, self.store.update_interaction(call.interaction_id,
                                                                        queue=kw["queue"]))
            for kind, data in events:
                await self._event(call, kind, **data)
            return
        try:
            await self.store.set_state(call.interaction_id, state, events=events, **kw)
        except CrmError as e:
            await self._event(call, "state_failed", ok=False, state=state, error=str(e))
            for kind, data in events:
                await self._event(call, kind, **data)

    # ------------------------------------------------------------------ AGI: arrive, IVR, queue
    async def agi_ivr(self, session: AgiSession) -> None:
        env = session.env
        caller = env.callerid_known or ""
        interaction = await self.store.open_interaction(  # its `arrive` event in the same write
            "voice", "inbound", None, external_id=env.uniqueid, from_address=caller or None,
            to_address=env.dnid if env.dnid not in ("", "unknown") else None,
            events=(("arrive", {"channel": env.channel, "caller": caller or "anonymous"}),))
        call = VoiceCall(interaction.id, env.uniqueid, caller)
        self.calls[call.interaction_id] = call
        self.by_linkedid[call.linkedid] = call
        await session.set_variable("CC_INTERACTION", str(call.interaction_id))
        await self._identify(call)
        await self._state(call, "ivr")
        variables = {"caller_id": caller, "caller_name": env.calleridname, "uniqueid": env.uniqueid,
                     **{f"param.{k}": v for k, v in session.route.params.items()}}
        done = await run_flow(session, self.flow, self.lookups, variables=variables,
                              clock=self.ivr_clock, options=_OWN_ROUTE_VARIABLES)
        call.ivr_path = _path(done)
        result = done.result
        if result.kind != "queue":  # a queued call's ROUTE_TO is set once an agent has the pop
            await _route_variables(session, done)
        ivr = {"result": result.describe(), "path": call.ivr_path,
               **({"error": done.error} if done.error else {})}
        if done.error:
            await self._event(call, "ivr", ok=False, **ivr)
        try:  # the path with its `ivr` event in one write
            await self.store.update_interaction(call.interaction_id, ivr_path=call.ivr_path,
                                                events=() if done.error else (("ivr", ivr),))
        except CrmError as e:
            if not done.error:
                await self._event(call, "ivr", **ivr)
            await self._event(call, "ivr_path_failed", ok=False, error=str(e))
        kind = result.kind
        if kind == "abandoned":
            await self._finish_without_agent(call, "abandoned", "caller hung up in the IVR")
        elif kind == "queue":
            queue = result.queue if result.queue else self.options.default_queue
            await self._queue(call, session, queue, dict(result.skills), float(result.priority_boost))
        else:
            if kind == "callback" and self.on_callback is not None:
                await self.on_callback(call, result)  # services/callbacks.py schedules it
            await self._finish_without_agent(call, "ended", result.describe())

    async def _identify(self, call: VoiceCall) -> None:
        try:
            customer = await self.store.identify(phone=call.caller) if call.caller else None
        except CrmError as e:
            await self._event(call, "identify", ok=False, error=str(e))
            return
        if customer is None:
            await self._event(call, "identify", ok=False, known=False, caller=call.caller or "anonymous")
            return
        call.customer_id, call.tier, call.customer_name = customer.id, customer.tier, customer.name
        identified = {"known": True, "customer_id": customer.id, "tier": customer.tier}
        try:  # the link and its `identify` event in one write
            await self.store.link_customer(call.interaction_id, customer.id,
                                           events=(("identify", identified),))
        except CrmError as e:
            await self._event(call, "link_failed", ok=False, error=str(e))
            await self._event(call, "identify", **identified)

    async def _queue(self, call: VoiceCall, session: AgiSession, queue: str, skills: dict[str, int],
                     boost: float) -> None:
        if queue not in self.runner.engine.config.queues:
            await self._event(call, "unknown_queue", ok=False, queue=queue)
            queue = self.options.default_queue
        if not skills:
            skills = dict(self.options.queue_skills.get(queue, {}))
        call.queue, call.state, call.queued_mono = queue, "queued", self.mono()
        call.assigned = asyncio.get_running_loop().create_future()
        await self._state(call, "queued", queue=queue,
                          events=(("queue", {"queue": queue, "skills": skills, "priority": boost}),))
        contact = Contact(call.contact_id, Channel.VOICE, queue, self.mono(),
                          customer_id=str(call.customer_id or ""), tier=Tier(call.tier), skills=skills,
                          priority=boost)
        call.routed, call.session = True, session
        await self.runner.handle(ContactArrived(contact))  # may offer at once: routing first,
        await _quietly(session.set_music(True))  # then music on hold (one PBX round trip)
        await self._dial_when_assigned(call, session)

    async def _dial_when_assigned(self, call: VoiceCall, session: AgiSession) -> None:
        """Wait (caller on music on hold) for an agent whose console shows the pop; then set the
        dial target and return, so the dialplan rings the agent."""
        assert call.assigned is not None
        hung = asyncio.ensure_future(session.hangup_event.wait())
        try:
            await asyncio.wait({call.assigned, hung}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hung.cancel()
        if session.hung_up or not call.assigned.done():
            await self.caller_gone(call, "caller hung up while queued")
            return
        agent = call.assigned.result()
        if agent is None:  # the caller took a callback instead of waiting (services/callbacks.py)
            await session.set_variable("ROUTE_TO", "")
            await self._finish_without_agent(call, "ended", "callback taken instead of waiting")
            return
        await _quietly(session.set_music(False))
        await session.set_variable("ROUTE_KIND", "agent")
        await session.set_variable("ROUTE_TO", agent.dial_string or "")
        await self._event(call, "dial", agent=agent.username, target=agent.dial_string)

    async def _finish_without_agent(self, call: VoiceCall, state: str, detail: str) -> None:
        call.state = "done"
        await self._event(call, "end", ok=state != "failed", detail=detail)
        await self._state(call, state)
        if state == "ended":
            await self._state(call, "wrapup_done")
        self._forget(call)

    # ------------------------------------------------------------------ AGI: after the dial
    # async (session, interaction id, DIALSTATUS) -> bool: continue a call another process held
    # (several processes: scaleout/setup.py sets it to voice_resume.continue_call)
    adopt: Callable[[AgiSession, int, str], Awaitable[bool]] | None = None

    async def agi_after_dial(self, session: AgiSession) -> None:
        iid = await self._interaction_id(session)
        call = self.calls.get(iid) if iid is not None else None
        if call is not None and call.transfer is not None:
            await self._after_transfer(call, session)
            return
        status = await session.get_variable("DIALSTATUS") or ""
        if status == "ANSWER":
            # the agent hung up; the caller goes on to the survey (wrap-up may be over already)
            if self.options.survey and iid is not None and await self._was_answered(iid, call):
                await session.set_variable("CC_SURVEY", "1")
            else:
                await session.set_variable("ROUTE_TO", "")  # no survey: the dialplan hangs up, never redials
            return
        if call is None and iid is not None and self.adopt is not None \
                and await self.adopt(session, iid, status or "NOANSWER"):
            return  # another process held the call: continued here (voice_resume.py)
        if call is None:
            await session.set_variable("ROUTE_TO", "")  # nothing more to dial (never redial a stale target)
            return
        # NOANSWER, BUSY, CHANUNAVAIL, CONGESTION: back to the queue, keeping the place
        await self.no_answer(call, status or "NOANSWER")
        if call.state in ("queued", "offered") and not session.hung_up:
            await _quietly(session.set_music(True))
            await self._dial_when_assigned(call, session)
        else:
            await session.set_variable("ROUTE_TO", "")

    async def _was_answered(self, iid: int, call: VoiceCall | None) -> bool:
        if call is not None:
            return call.state in ("talking", "wrapup", "done")
        try:
            return (await self.store.get_interaction(iid)).answered_at is not None
        except CrmError:
            return False

    async def agi_survey(self, session: AgiSession) -> None:
        """The post-call survey. It often runs after the agent's wrap-up is over, so it goes to
        the store by interaction id (the score takes the interaction's customer), not to the
        live calls."""
        iid = await self._interaction_id(session)
        done = await run_flow(session, self.flow, self.lookups, entry="survey", clock=self.ivr_clock,
                              options=_OWN_ROUTE_VARIABLES)  # the dialplan reads none after it
        if iid is None:
            return
        score = getattr(done.result, "score", None)
        try:
            if score is None:
                await self.store.append_event(iid, "survey", ok=False,
                                              data={"detail": done.result.describe()})
                return
            try:  # the score, its `csat` and `survey` events in one write
                await self.store.record_survey(int(score), interaction_id=iid, channel="voice",
                                               events=(("survey", {"score": int(score)}),))
            except NotFound:
                raise
            except CrmError as e:
                await self.store.append_event(iid, "survey", ok=False, data={"error": str(e)})
        except NotFound:
            log.warning("survey for an unknown interaction %s", iid)

    async def _interaction_id(self, session: AgiSession) -> int | None:
        raw = await session.get_variable("CC_INTERACTION")
        if not raw or not raw.isdigit():
            log.warning("AGI %s without an interaction (%r)", session.route.script, raw)
            return None
        return int(raw)

    # ------------------------------------------------------------------ routing decisions
    async def perform(self, decisions: list[Decision]) -> set[str]:
        """Perform the engine's decisions about voice contacts; returns the agents touched.

        Runs under the routing runner's lock: anything that feeds the engine again is spawned."""
        touched: set[str] = set()
        for d in decisions:
            cid = getattr(d, "contact_id", None)
            call = self.calls.get(int(cid)) if cid and cid.isdigit() else None
            if isinstance(d, RoutingOffer) and call is not None:
                await self._offer(call, d)
            elif isinstance(d, Ended) and call is not None:
                call.routed = False
                if d.outcome is ContactStatus.ABANDONED and call.state in ("queued", "offered", "ringing"):
                    await self._abandoned(call)
            elif call is not None:
                await self._event(call, type(d).__name__.lower(), **_fields(d))
            agent = getattr(d, "agent_id", None)
            if agent:
                touched.add(agent)
        return touched

    async def _offer(self, call: VoiceCall, d: RoutingOffer) -> None:
        agent = self.directory.agents.get(d.agent_id)
        if agent is None:
            return
        expires = datetime.now(UTC) + timedelta(seconds=max(0.0, d.lease_until - self.mono()))
        reasons = [{"name": p.name, "value": p.value, "note": p.note} for p in d.reasons]
        offer = PendingOffer(secrets.token_urlsafe(9), d.agent_id, reasons, expires.isoformat())
        call.offer, call.agent_id, call.state = offer, d.agent_id, "offered"
        # The pop's card is read while the offer is stored (one write, with its timeline event);
        # the console hears of the offer only once it is stored.
        card = asyncio.ensure_future(self._card(call))
        try:
            await self._state(call, "offered", agent_id=agent.user_id,
                              events=(("offer", {"agent": agent.username, "reasons": reasons}),))
        except BaseException:
            card.cancel()
            raise
        call.pop_card = await card
        message = await self.offer_message(call, card=call.pop_card)
        delivered = self.hub.send(agent.user_id, "offer", **message)
        if not delivered:
            await self._event(call, "offer_undelivered", ok=False, agent=agent.username)
            self.spawn(self._refuse(call, offer, no_answer=False, why="agent_disconnected"))
            return
        self.spawn(self._await_ack(call, offer, agent))

    async def _card(self, call: VoiceCall) -> dict[str, Any] | None:
        if call.customer_id is None:
            return None
        try:
            return (await self.store.customer_card(call.customer_id)).to_dict()
        except CrmError as e:
            await self._event(call, "pop_failed", ok=False, error=str(e))
            return None

    async def offer_message(self, call: VoiceCall, *, card: Any = ...) -> dict[str, Any]:
        """The `offer` message with the pop (`card`: already read, or ... for the offer's own)."""
        assert call.offer is not None
        if card is ...:
            card = call.pop_card if call.pop_card is not None else await self._card(call)
        pop: dict[str, Any] = {"known": card is not None, "card": card}
        if card is None and getattr(self.store, "crm_unavailable", False):  # scaleout/buffered.py
            pop["crm"] = "unavailable"  # a database outage: only the caller's number is known
        return {"offer_id": call.offer.id, "interaction_id": call.interaction_id, "channel": "voice",
                "queue": call.queue, "caller": call.caller or "anonymous",
                "pop": pop, "ivr_path": pop_path(call.ivr_path),
                "reasons": call.offer.reasons, "expires_at": call.offer.expires_at,
                **({"transfer": call.handoff} if call.handoff else {})}

    async def _await_ack(self, call: VoiceCall, offer: PendingOffer, agent: Agent) -> None:
        try:
            await asyncio.wait_for(offer.ack.wait(), self.options.ack_timeout_s)
        except TimeoutError:
            await self._event(call, "pop_ack_timeout", ok=False, agent=agent.username,
                              waited_s=self.options.ack_timeout_s)
        if call.offer is offer and not offer.settled and call.assigned and not call.assigned.done():
            call.assigned.set_result(agent)

    def ack(self, user_id: int, offer_id: str) -> VoiceCall | None:
        for call in self.calls.values():
            o = call.offer
            if o is not None and o.id == offer_id and o.agent_id == str(user_id) and not o.settled:
                self.spawn(self._acked(call, o))
                return call
        return None

    async def _acked(self, call: VoiceCall, offer: PendingOffer) -> None:
        """The pop is on screen: stored on the timeline first, then the dial may go ahead."""
        if not offer.ack.is_set():
            await self._event(call, "pop_ack", offer_id=offer.id)
            offer.ack.set()

    async def decline(self, user_id: int, offer_id: str) -> bool:
        for call in self.calls.values():
            o = call.offer
            if o is not None and o.id == offer_id and o.agent_id == str(user_id) and not o.settled:
                await self._refuse(call, o, no_answer=False, why="declined")
                return True
        return False

    async def _refuse(self, call: VoiceCall, offer: PendingOffer, *, no_answer: bool, why: str) -> None:
        """The offer failed (no answer, declined, console gone): re-queue with the place kept."""
        if offer.settled or call.offer is not offer:
            return
        offer.settled = True
        agent = self.directory.agents.get(offer.agent_id)
        call.state, call.offer, call.agent_leg = "queued", None, None
        if call.assigned is None or call.assigned.done():
            call.assigned = asyncio.get_running_loop().create_future()
        await self._event(call, "requeue", ok=False, reason=why,
                          agent=agent.username if agent else offer.agent_id)
        await self._state(call, "queued")
        if agent is not None:  # stored first, then the console is told
            self.hub.send(agent.user_id, "offer_withdrawn", offer_id=offer.id,
                          interaction_id=call.interaction_id, reason=why)
        try:
            await self.runner.handle(OfferDeclined(call.contact_id, offer.agent_id, no_answer=no_answer))
        except RoutingError as e:
            await self._event(call, "routing_refused", ok=False, error=str(e))
        self.directory.push_state(offer.agent_id)

    async def no_answer(self, call: VoiceCall, status: str) -> None:
        """Ring-no-answer (or busy): from AMI DialEnd or from the after-dial AGI, whichever is first."""
        offer = call.offer
        if offer is None or offer.settled or call.state not in ("offered", "ringing"):
            return
        await self._event(call, "rona", ok=False, dial_status=status)
        await self._refuse(call, offer, no_answer=True, why="no_answer")

    # ------------------------------------------------------------------ AMI: ring, talk, hang-up
    async def on_ami_event(self, ev: AmiEvent) -> None:
        name = ev.name
        if name in FALLBACK_EVENTS and ev.get("Queue") == self.options.fallback_queue:
            await self._fallback_event(ev)
            return
        if name not in ("DialBegin", "DialEnd", "Hangup", "MusicOnHoldStart", "BridgeEnter",
                        "MixMonitorStart", "MixMonitorStop", "OriginateResponse", "ConfbridgeJoin",
                        "ConfbridgeLeave", "ConfbridgeEnd"):
            return
        if self.conference.watching(ev):  # ConfBridge events, hang-ups while in a conference
            await self.conference.on_event(ev)
            return
        if name == "OriginateResponse" or (name == "DialBegin" and not ev.get("Channel")):
            await self._originate_event(ev)
            return
        call = self.by_linkedid.get(ev.get("Linkedid") or "")
        if call is None:
            if name == "Hangup":
                await self._fallback_hangup(ev)
            return
        cons = call.consult
        if cons is not None and await self._consult_event(call, cons, ev):
            return
        if call.outbound is not None and name in ("DialBegin", "DialEnd"):
            await self._outbound_event(call, ev)
            return
        if name == "DialBegin" and call.state == "offered" and call.offer is not None:
            call.state, call.agent_leg = "ringing", ev.get("DestUniqueid")
            call.caller_channel, call.agent_channel = ev.get("Channel"), ev.get("DestChannel")
            await self._event(call, "ring", device=ev.get("DestChannel"))
            self._contact_state(call, "ringing")
        elif name == "DialEnd" and ev.get("DestUniqueid") == call.agent_leg and call.offer is not None:
            status = ev.get("DialStatus") or ""
            if status == "ANSWER":
                await self._answered(call)
            else:
                await self.no_answer(call, status)
        elif name in ("MusicOnHoldStart", "BridgeEnter"):
            await self._control_confirmed(call, ev)
        elif name in ("MixMonitorStart", "MixMonitorStop"):
            await self._recording_confirmed(call, ev)
        elif name == "Hangup" and call.pending == "transfer" and ev.get("Uniqueid") == call.agent_leg:
            await self._transfer_released(call)
        elif name == "Hangup" and call.pending == "complete" and ev.get("Uniqueid") == call.agent_leg:
            await self._consult_completed(call)
        elif name == "Hangup" and call.outbound is not None and call.state == "ringing":
            # hung up before the customer answered (before the agent did: OriginateResponse decides)
            if ev.get("Uniqueid") == call.agent_leg and call.pending != "originate":
                call.state = "done"
                await self._event(call, "hangup", by="agent", outbound=True, answered=False)
                await self._state(call, "ended")
                self._contact_state(call, "ended")
                await self._state(call, "wrapup_done")
                self._forget(call)
        elif name == "Hangup":
            uid, caller = ev.get("Uniqueid"), call.caller_uid or call.linkedid
            if call.state in ("talking", "held") and uid in (caller, call.agent_leg):
                who = "caller" if uid == caller else "agent"
                await self._ended(call, who, ev.get("Cause-txt") or ev.get("Cause") or "")
            elif uid == caller and call.state in ("queued", "offered", "ringing"):
                await self.caller_gone(call, "caller hung up")

    # ------------------------------------------------------------------ call controls
    async def _send(self, call: VoiceCall, kind: str, actions: list[Any], *, pending: bool = True,
                    **data: Any) -> None:
        """Send a control's AMI actions. A refusal by the PBX goes on the timeline and raises
        MessageRefused("invalid"): a refused control changes nothing."""
        if self.ami is None:
            error = "the PBX is not connected"
        else:
            error = None
            for action in actions:
                try:
                    result = await self.ami.send_action(action)
                except Exception as e:  # noqa: BLE001 - AMI down, timeout: refused, nothing changed
                    error = f"the PBX did not answer ({type(e).__name__})"
                    break
                if not result.ok:
                    error = result.response.message or "the PBX refused the action"
                    break
        if error is not None:
            if pending:
                call.pending = None
            await self._event(call, kind, ok=False, error=error, **data)
            raise MessageRefused("invalid", f"The phone system refused to {kind}: {error}")

    def _ready_for(self, call: VoiceCall, states: tuple[str, ...], what: str) -> None:
        if call.state not in states or call.pending or not call.caller_channel or not call.agent_channel:
            raise MessageRefused("conflict", f"the call cannot be {what} now")

    async def hold(self, call: VoiceCall) -> None:
        from callcenter.asterisk.hold import hold_actions

        self._ready_for(call, ("talking",), "held")
        call.pending = "hold"
        await self._send(call, "hold", hold_actions(call.caller_channel or "", call.agent_channel or ""))

    async def retrieve(self, call: VoiceCall) -> None:
        from callcenter.asterisk.hold import retrieve_actions

        self._ready_for(call, ("held",), "retrieved")
        call.pending = "retrieve"
        await self._send(call, "retrieve",
                         retrieve_actions(call.caller_channel or "", call.agent_channel or ""))

    async def transfer(self, call: VoiceCall, target_type: str, target: str, notes: str | None,
                       *, escalation: dict[str, Any] | None = None) -> None:
        """Blind transfer: one Redirect sends the caller back into the after-dial AGI
        (`cc-route,s,after`) and the agent's leg to `cc-hold,agent,2` (Hangup). When AMI confirms
        the agent's leg is gone, the agent goes to wrap-up; the AGI then routes the contact again
        (queue, or agent as the preferred agent) or dials the external number."""
        from callcenter.asterisk.ami import make_action

        self._ready_for(call, ("talking", "held"), "transferred")
        t: dict[str, Any] = {"target_type": target_type, "target": target, "notes": notes or None}
        if target_type == "agent":
            dest = next((a for a in self.directory.agents.values()
                         if a.username == target or str(a.user_id) == target), None)
            if dest is None:
                raise MessageRefused("not_found", f"no agent {target!r}")
            if dest.agent_id == call.agent_id:
                raise MessageRefused("invalid", "you cannot transfer a call to yourself")
            t["agent_id"], t["queue"] = dest.agent_id, call.queue or self.options.default_queue
        elif target_type == "queue":
            if target not in self.runner.engine.config.queues:
                raise MessageRefused("not_found", f"no queue {target!r}")
            t["queue"] = target
        elif target_type == "external":
            if not _EXTERNAL.match(target):
                raise MessageRefused("invalid", "an external number is + and 3 to 20 digits")
        else:
            raise MessageRefused("invalid", "target_type must be agent, queue or external")
        agent = self.directory.agents.get(call.agent_id or "")
        t["from"] = agent.username if agent else None
        if escalation is not None:
            t["escalation"] = escalation
        call.transfer, call.released, call.pending = t, asyncio.Event(), "transfer"
        # a click-to-dial customer enters the after-dial AGI without CC_INTERACTION: set it first
        first = [make_action("Setvar", Channel=call.caller_channel or "", Variable="CC_INTERACTION",
                             Value=str(call.interaction_id))] if call.outbound is not None else []
        try:
            await self._send(call, "transfer", [*first, make_action(
                "Redirect", Channel=call.caller_channel or "", Context="cc-route", Exten="s",
                Priority=AFTER_DIAL_PRIORITY, ExtraChannel=call.agent_channel or "",
                ExtraContext="cc-hold", ExtraExten="agent", ExtraPriority=2)])
        except MessageRefused:
            call.transfer = call.released = None
            raise

    async def _transfer_released(self, call: VoiceCall) -> None:
        """AMI confirmed the transferring agent's leg is gone: that agent goes to wrap-up (on a
        copy of the call), the call itself waits for the after-dial AGI to route it again."""
        t = call.transfer or {}
        aid = call.agent_id
        call.pending = None
        esc = t.get("escalation")
        if esc is not None:  # an escalation by the agent: the ticket (if any) is escalated too
            ticket = await self._escalate_ticket(call, str(esc["escalation_queue"]))
            await self._event(call, "escalate", target_type=t.get("target_type"), target=t.get("target"),
                              by=t.get("from"), reason=t.get("notes"), ticket=ticket)
        else:
            await self._event(call, "transfer", target_type=t.get("target_type"), target=t.get("target"),
                              by=t.get("from"), notes=t.get("notes"))
        if aid is not None:
            wrap = VoiceCall(call.interaction_id, call.linkedid, call.caller, customer_id=call.customer_id,
                             tier=call.tier, queue=call.queue, state="wrapup", agent_id=aid,
                             transferred=True)
            self.wrapups[aid] = wrap
            self._contact_state(wrap, "ended")
            try:
                if not call.outside_routing:
                    await self.runner.handle(ContactFinished(call.contact_id, aid, self.options.wrapup_s))
            except RoutingError as e:
                await self._event(call, "routing_refused", ok=False, error=str(e))
            self._send_wrapup(wrap)
            self.directory.push_state(aid)
        # routed from here on like an inbound call (a click-to-dial call too)
        call.outbound, call.outside_routing = None, False
        call.state, call.agent_id, call.agent_leg, call.agent_channel = "transferring", None, None, None
        call.offer = None
        if call.released is not None:
            call.released.set()

    async def _escalate_ticket(self, call: VoiceCall, queue: str) -> str | None:
        """The ticket linked to the interaction, else the customer's newest open ticket, gets
        its escalation queue. Returns its number (None when there is none)."""
        try:
            ticket = await self.store.escalate_ticket_of(call.interaction_id, call.customer_id, queue)
            return None if ticket is None else str(ticket.number)
        except CrmError as e:
            await self._event(call, "escalate_ticket_failed", ok=False, error=str(e))
            return None

    async def _after_transfer(self, call: VoiceCall, session: AgiSession) -> None:
        if call.released is not None:
            try:
                await asyncio.wait_for(call.released.wait(), 10)
            except TimeoutError:
                await self._transfer_released(call)  # the Hangup event never came: go on anyway
        t, call.transfer = call.transfer or {}, None
        if t.get("target_type") == "external":
            dial = self.options.external_dial.format(number=t["target"])
            await session.set_variable("ROUTE_TO", dial)
            await self._event(call, "dial", external=t["target"], target=dial)
            call.state = "done"
            await self._state(call, "ended")
            self._forget(call)
            return
        queue = str(t.get("queue") or call.queue or self.options.default_queue)
        call.handoff = {"from": t.get("from"), "notes": t.get("notes")}
        call.queue, call.state, call.queued_mono = queue, "queued", self.mono()
        call.assigned = asyncio.get_running_loop().create_future()
        skills = dict(self.options.queue_skills.get(queue, {}))
        await self._state(call, "queued", queue=queue,
                          events=(("queue", {"queue": queue, "skills": skills, "transfer": True,
                                             "preferred_agent": t.get("agent_id")}),))
        contact = Contact(call.contact_id, Channel.VOICE, queue, self.mono(),
                          customer_id=str(call.customer_id or ""), tier=Tier(call.tier), skills=skills,
                          preferred_agent=t.get("agent_id"), sticky_s=300.0 if t.get("agent_id") else None)
        call.routed = True
        await self.runner.handle(ContactArrived(contact))
        await _quietly(session.set_music(True))
        await self._dial_when_assigned(call, session)

    async def _control_confirmed(self, call: VoiceCall, ev: AmiEvent) -> None:
        """The PBX confirmed a control: the caller hears music (held), or is bridged again."""
        uid, caller = ev.get("Uniqueid"), call.caller_uid or call.linkedid
        if ev.name == "MusicOnHoldStart" and call.pending == "hold" and uid == caller:
            call.pending, call.state = None, "held"
            await self._event(call, "hold", caller=call.caller_channel, agent=call.agent_channel)
            self._contact_state(call, "held")
        elif ev.name == "MusicOnHoldStart" and call.pending == "consult" and uid == caller:
            call.pending, call.state = None, "held"
            c = call.consult or {}
            await self._event(call, "consult", target_type=c.get("target_type"), target=c.get("target"),
                              dial=c.get("dial"))
            self._contact_state(call, "held")
        elif ev.name == "BridgeEnter" and call.pending == "retrieve" and uid == caller:
            call.pending, call.state = None, "talking"
            await self._event(call, "retrieve", bridge=ev.get("BridgeUniqueid"))
            self._contact_state(call, "talking")

    # ------------------------------------------------------------------ click-to-dial
    async def dial(self, agent: Agent, number: str, customer_id: int | None, *,
                   interaction_id: int | None = None, routed: bool = False) -> VoiceCall:
        """Click-to-dial: AMI Originate (async) rings the agent's phone (Channel = their device);
        once it answers it runs [cc-outbound] <number>, which dials the customer. Logged as an
        outbound interaction; the console hears `contact_state` as the PBX confirms each step.
        `interaction_id`: an outbound interaction already open (a callback's); `routed`: the agent
        accepted a routed offer (a callback), so being ready is fine."""
        from callcenter.asterisk.ami import make_action

        if not agent.dial_string:
            raise MessageRefused("invalid", "you have no phone extension")
        if self.current_for(agent.agent_id) is not None:
            raise MessageRefused("conflict", "finish your current contact first")
        rec = self.runner.engine.store.agent(agent.agent_id)
        if rec is not None and rec.presence.value == "ready" and not routed:
            raise MessageRefused("conflict", "set yourself not ready before dialling out")
        digits = number.lstrip("+")
        if interaction_id is None:
            interaction_id = (await self.store.open_interaction(
                "voice", "outbound", customer_id, from_address=agent.extension, to_address=number)).id
        call = VoiceCall(interaction_id, f"originate-{interaction_id}", number, customer_id=customer_id,
                         state="ringing", agent_id=agent.agent_id, outbound=number, outside_routing=True)
        self.calls[call.interaction_id] = call
        await self._event(call, "dial", outbound=True, number=number, agent=agent.username)
        call.pending = "originate"
        try:
            await self._send(call, "dial", [make_action(
                "Originate", action_id=f"cc-dial-{call.interaction_id}", Channel=agent.dial_string,
                Context="cc-outbound", Exten=digits, Priority=1, Async="true", Timeout=30000,
                CallerID=f"{number} <{digits}>")])
        except MessageRefused:
            call.state = "done"
            await self._state(call, "failed")
            self._forget(call)
            raise
        return call

    async def _originate_event(self, ev: AmiEvent) -> None:
        """The Originate's own events: DialBegin to the agent's phone (no caller channel), then
        OriginateResponse (Success once the agent answered, Failure with a Reason otherwise)."""
        if ev.name == "DialBegin":
            dest = ev.get("DestChannel") or ""
            for call in self.calls.values():
                agent = self.directory.agents.get(call.agent_id or "")
                device = (agent.dial_string or "") if agent is not None else ""
                if (call.outbound is not None and call.pending == "originate" and call.agent_leg is None
                        and device and dest.startswith(device + "-")):
                    call.agent_leg, call.agent_channel = ev.get("DestUniqueid"), dest
                    self.by_linkedid.pop(call.linkedid, None)
                    call.linkedid = ev.get("DestLinkedid") or ev.get("DestUniqueid") or call.linkedid
                    self.by_linkedid[call.linkedid] = call
                    await self._event(call, "ring", device=dest, outbound=True)
                    self._contact_state(call, "ringing")
                    return
            return
        aid = ev.get("ActionID") or ""
        if not aid.startswith("cc-dial-") or not aid[8:].isdigit():
            return
        found = self.calls.get(int(aid[8:]))
        if found is None or found.pending != "originate":
            return
        call = found
        call.pending = None
        if ev.get("Response") == "Success":
            await self._event(call, "agent_answered", outbound=True)
            return
        reason = {"0": "the call failed", "1": "no such extension or number", "3": "no answer",
                  "5": "busy", "8": "congestion"}.get(ev.get("Reason") or "", "the call failed")
        await self._event(call, "dial", ok=False, outbound=True, reason=reason, code=ev.get("Reason"))
        agent = self.directory.agents.get(call.agent_id or "")
        call.state = "done"
        await self._state(call, "failed")
        self._forget(call)
        if agent is not None:
            self._contact_state(call, "ended")
            self.hub.send(agent.user_id, "error", code="invalid",
                          message=f"Your phone did not take the call ({reason}); nothing was dialled.")

    async def _outbound_event(self, call: VoiceCall, ev: AmiEvent) -> None:
        """The agent's leg dials the customer: DialBegin, then DialEnd (ANSWER: talking)."""
        if ev.name == "DialBegin" and ev.get("Channel") == call.agent_channel and call.caller_channel is None:
            call.caller_channel, call.caller_uid = ev.get("DestChannel"), ev.get("DestUniqueid")
            await self._event(call, "ring", device=ev.get("DestChannel"), customer=True)
        elif ev.name == "DialEnd" and ev.get("Channel") == call.agent_channel and call.state == "ringing":
            status = ev.get("DialStatus") or ""
            if status == "ANSWER":
                call.state = "talking"
                agent = self.directory.agents.get(call.agent_id or "")
                await self._state(call, "answered", agent_id=agent.user_id if agent else None)
                await self._event(call, "answer", outbound=True, channel=call.caller_channel)
                self._contact_state(call, "talking")
            else:
                await self._event(call, "dial", ok=False, outbound=True, dial_status=status)

    # ------------------------------------------------------------------ warm transfer
    def _consult_target(self, call: VoiceCall, target_type: str, target: str) -> dict[str, Any]:
        if target_type == "agent":
            dest = next((a for a in self.directory.agents.values()
                         if a.username == target or str(a.user_id) == target), None)
            if dest is None or not dest.dial_string:
                raise MessageRefused("not_found", f"no agent {target!r} with a phone")
            if dest.agent_id == call.agent_id:
                raise MessageRefused("invalid", "you cannot consult yourself")
            return {"target_type": "agent", "target": dest.username, "agent_id": dest.agent_id,
                    "dial": dest.dial_string}
        if target_type == "external":
            if not _EXTERNAL.match(target):
                raise MessageRefused("invalid", "an external number is + and 3 to 20 digits")
            return {"target_type": "external", "target": target,
                    "dial": self.options.external_dial.format(number=target)}
        raise MessageRefused("invalid", "target_type must be agent or external")

    async def consult(self, call: VoiceCall, target_type: str, target: str) -> None:
        """Warm transfer, step 1: the caller is held (music, [cc-hold] caller) and the agent's leg
        is redirected to [cc-consult], where it dials CC_CONSULT_TO (set first with Setvar)."""
        from callcenter.asterisk.ami import make_action

        self._ready_for(call, ("talking",), "put on hold for a consultation")
        if call.consult is not None:
            raise MessageRefused("conflict", "a consultation is already under way")
        c = (await self.conference.supervisor_target(target) if target_type == "supervisor"
             else self._consult_target(call, target_type, target))
        c["state"] = "starting"
        call.consult, call.pending = c, "consult"
        try:
            await self._send(call, "consult", [
                make_action("Setvar", Channel=call.agent_channel or "", Variable="CC_CONSULT_TO",
                            Value=c["dial"]),
                make_action("Redirect", Channel=call.caller_channel or "", Context="cc-hold",
                            Exten="caller", Priority=1, ExtraChannel=call.agent_channel or "",
                            ExtraContext="cc-consult", ExtraExten="s", ExtraPriority=1)],
                target=c["target"])
        except MessageRefused:
            call.consult = None
            raise

    async def consult_end(self, call: VoiceCall, how: str) -> None:
        """Warm transfer, step 2. complete: Bridge the caller with the consulted party, then hang
        up the agent's leg (the agent goes to wrap-up when AMI confirms). cancel: hang up the
        consulted party; once AMI confirms, the caller is bridged back to the agent."""
        from callcenter.asterisk.ami import make_action

        c = call.consult
        if c is None or call.pending:
            raise MessageRefused("conflict", "no consultation under way")
        if how == "complete":
            if c.get("state") != "talking":
                raise MessageRefused("conflict", "the consulted party has not answered")
            call.pending = "complete"
            await self._send(call, "complete", [
                make_action("Bridge", Channel1=call.caller_channel or "", Channel2=c["channel"], Tone="no"),
                make_action("Hangup", Channel=call.agent_channel or "", Cause=16)], target=c["target"])
        elif how == "cancel":
            if c.get("state") not in ("dialing", "talking"):
                raise MessageRefused("conflict", "the consultation is not ringing or talking")
            call.pending = "cancel"
            await self._send(call, "cancel", [make_action("Hangup", Channel=c["channel"], Cause=16)],
                             target=c["target"])
        else:
            raise MessageRefused("invalid", "action must be complete or cancel")

    async def _consult_event(self, call: VoiceCall, c: dict[str, Any], ev: AmiEvent) -> bool:
        """The consultation's own events (the agent leg's Dial); True when the event was used."""
        name = ev.name
        if name == "DialBegin" and ev.get("Channel") == call.agent_channel and "uniqueid" not in c:
            c.update(state="dialing", channel=ev.get("DestChannel"), uniqueid=ev.get("DestUniqueid"))
            self._consult_state(call, "dialing")
            return True
        if name == "DialEnd" and c.get("uniqueid") and ev.get("DestUniqueid") == c["uniqueid"]:
            status = ev.get("DialStatus") or ""
            if status == "ANSWER":
                c["state"] = "talking"
                await self._event(call, "consult_answered", target=c["target"])
                self._consult_state(call, "talking")
            else:
                call.consult = None
                if call.pending == "cancel":
                    call.pending = None
                await self._event(call, "consult", ok=False, target=c["target"], dial_status=status)
                self._consult_state(call, "failed", c)
                if call.state == "held":  # back to the caller
                    self.spawn(self._back_to_caller(call))
            return True
        if name == "Hangup" and c.get("uniqueid") and ev.get("Uniqueid") == c["uniqueid"]:
            if call.pending == "complete":
                return True  # the consulted party left before the merge: the agent leg's Hangup decides
            cancelled = call.pending == "cancel"
            call.consult, call.pending = None, None
            await self._event(call, "cancel", ok=True, target=c["target"],
                              by="agent" if cancelled else "consulted party")
            self._consult_state(call, "ended", c)
            if call.state == "held":  # back to the caller (AMI Bridge; BridgeEnter confirms)
                self.spawn(self._back_to_caller(call))
            return True
        return False

    async def _back_to_caller(self, call: VoiceCall) -> None:
        try:
            await self.retrieve(call)
        except MessageRefused as e:
            log.warning("retrieve after a consultation failed: %s", e)

    async def _consult_completed(self, call: VoiceCall) -> None:
        """AMI confirmed the first agent's leg is gone after the merge: that agent goes to wrap-up;
        the caller talks with the consulted party (an agent: the call is theirs now)."""
        c = call.consult or {}
        aid = call.agent_id
        call.pending, call.consult = None, None
        await self._event(call, "complete", target_type=c.get("target_type"), target=c.get("target"))
        if aid is not None:
            wrap = VoiceCall(call.interaction_id, call.linkedid, call.caller, customer_id=call.customer_id,
                             tier=call.tier, queue=call.queue, state="wrapup", agent_id=aid,
                             transferred=True)
            self.wrapups[aid] = wrap
            self._consult_state(call, "ended", c)
            self._contact_state(wrap, "ended")
            if not call.outside_routing:
                try:
                    await self.runner.handle(ContactFinished(call.contact_id, aid, self.options.wrapup_s))
                except RoutingError as e:
                    await self._event(call, "routing_refused", ok=False, error=str(e))
            self._send_wrapup(wrap)
            self.directory.push_state(aid)
        if c.get("target_type") == "agent":
            dest = self.directory.agents.get(c["agent_id"])
            call.agent_id = c["agent_id"]
            call.agent_leg, call.agent_channel = c.get("uniqueid"), c.get("channel")
            call.state, call.outside_routing = "talking", True
            if dest is not None:
                await self._state(call, "answered", agent_id=dest.user_id)
            self._contact_state(call, "talking")
        else:  # a supervisor or an external number: tracked without an agent until the call ends
            call.agent_id, call.agent_leg, call.agent_channel = None, c.get("uniqueid"), c.get("channel")
            call.state, call.outside_routing = "talking", True

    def _consult_state(self, call: VoiceCall, state: str, c: dict[str, Any] | None = None) -> None:
        c = c if c is not None else (call.consult or {})
        agent = self.directory.agents.get(call.agent_id or "")
        if agent is not None:
            self.hub.send(agent.user_id, "consult_state", interaction_id=call.interaction_id, state=state,
                          target=str(c.get("target") or ""), at=datetime.now(UTC).isoformat())

    # ------------------------------------------------------------------ recording
    async def _start_recording(self, call: VoiceCall) -> None:
        """The queue's policy says record: MixMonitor on the caller's channel (it follows the
        caller through hold and transfers). A refusal goes on the timeline; the call goes on."""
        from callcenter.asterisk.ami import make_action

        ref = call.recording_ref or f"interaction-{call.interaction_id}.wav"
        if self.options.recordings_dir is None or not call.caller_channel:
            call.recording_ref = call.rec_pending = None
            await self._event(call, "recording", ok=False, action="start",
                              error="no recordings directory or caller channel")
            return
        try:
            await self._send(call, "recording", [make_action(
                "MixMonitor", Channel=call.caller_channel, File=str(self.options.recordings_dir / ref))],
                pending=False, action="start")
        except MessageRefused:
            if call.rec_pending == "start":
                call.recording_ref = call.rec_pending = None

    async def recording(self, call: VoiceCall, action: str) -> None:
        """Pause: StopMixMonitor. Resume: MixMonitor again on the same file with the `a` (append)
        option. The console hears `recording_state` once MixMonitorStop/Start confirms it."""
        from callcenter.asterisk.ami import make_action

        if action not in ("pause", "resume"):
            raise MessageRefused("invalid", "action must be pause or resume")
        if call.state not in ("talking", "held") or not call.caller_channel:
            raise MessageRefused("conflict", "the call is not live")
        if call.recording is None or call.recording_ref is None:
            raise MessageRefused("conflict", "this call is not being recorded")
        if call.rec_pending or call.recording != ("recording" if action == "pause" else "paused"):
            raise MessageRefused("conflict", f"the recording cannot {action} now")
        call.rec_pending = action
        if action == "pause":
            act = make_action("StopMixMonitor", Channel=call.caller_channel)
        else:
            assert self.options.recordings_dir is not None
            act = make_action("MixMonitor", Channel=call.caller_channel, Options="a",
                              File=str(self.options.recordings_dir / call.recording_ref))
        try:
            await self._send(call, "recording", [act], pending=False, action=action)
        except MessageRefused:
            call.rec_pending = None
            raise

    async def _recording_confirmed(self, call: VoiceCall, ev: AmiEvent) -> None:
        if ev.get("Uniqueid") != call.linkedid or call.rec_pending is None:
            return
        action, started = call.rec_pending, ev.name == "MixMonitorStart"
        if started != (action in ("start", "resume")):
            return
        call.rec_pending = None
        call.recording = "recording" if started else "paused"
        if action == "start":
            try:
                await self.store.update_interaction(call.interaction_id, recording_ref=call.recording_ref)
            except CrmError as e:
                await self._event(call, "recording_ref_failed", ok=False, error=str(e))
        await self._event(call, "recording", action=action, file=call.recording_ref)
        self._recording_state(call)

    def _recording_state(self, call: VoiceCall) -> None:
        agent = self.directory.agents.get(call.agent_id or "")
        if agent is not None and call.recording is not None:
            self.hub.send(agent.user_id, "recording_state", interaction_id=call.interaction_id,
                          state=call.recording, at=datetime.now(UTC).isoformat())

    # ------------------------------------------------------------------ the fallback queue
    async def _fallback_event(self, ev: AmiEvent) -> None:
        """Calls the dialplan sent to the plain fallback queue (the FastAGI server was down or
        refused) are logged from AMI, so no call goes unrecorded."""
        linkedid = ev.get("Linkedid") or ""
        iid = self._fallback.get(linkedid)
        if ev.name == "QueueCallerJoin" and iid is None and linkedid not in self.by_linkedid:
            caller = ev.get("CallerIDNum") or ""
            caller = "" if caller in ("<unknown>", "anonymous") else caller
            # several processes: the call's own interaction if the process holding it died
            # before an agent answered (callcenter/scaleout/); else a new one
            i = await self.store.find_interaction(linkedid) if linkedid else None
            if i is None or i.state not in ("new", "ivr", "queued", "offered"):
                i = await self.store.open_interaction("voice", "inbound", None, external_id=linkedid,
                                                      from_address=caller or None,
                                                      queue=self.options.fallback_queue)
            self._fallback[linkedid] = i.id
            await self.store.append_event(i.id, "fallback_queue", ok=False, data={
                "detail": "the contact center's AGI was unavailable; the PBX queued the call",
                "queue": ev.get("Queue"), "caller": caller or "anonymous"})
            customer = await self.store.identify(phone=caller) if caller else None
            if customer is not None:
                await self.store.link_customer(i.id, customer.id)
            if i.state != "queued":
                await self.store.set_state(i.id, "queued", queue=self.options.fallback_queue)
        elif iid is not None and ev.name == "AgentConnect":
            agent = self.directory.by_device(ev.get("Interface") or "")
            await self.store.set_state(iid, "answered", agent_id=agent.user_id if agent else None)
            await self.store.append_event(iid, "answer", data={"interface": ev.get("Interface"),
                                                               "fallback": True})
        elif iid is not None and ev.name == "QueueCallerAbandon":
            self._fallback.pop(linkedid, None)
            await self.store.append_event(iid, "abandon", ok=False, data={
                "wait_s": int(ev.get("HoldTime") or 0), "fallback": True})
            await self.store.set_state(iid, "abandoned")

    async def _fallback_hangup(self, ev: AmiEvent) -> None:
        linkedid = ev.get("Linkedid") or ""
        iid = self._fallback.get(linkedid)
        if iid is None or ev.get("Uniqueid") != linkedid:
            return
        del self._fallback[linkedid]
        i = await self.store.get_interaction(iid)
        if i.state == "answered":
            await self.store.set_state(iid, "ended")
            await self.store.append_event(iid, "hangup", data={"fallback": True})
            await self.store.set_state(iid, "wrapup_done")
        elif i.state in ("queued", "new"):
            await self.store.append_event(iid, "abandon", ok=False, data={"fallback": True})
            await self.store.set_state(iid, "abandoned")

    async def device_state(self, agent_id: str, state: str) -> None:
        """A phone busy with a call the center did not route makes its agent not-ready (reason
        `external-call`) until the phone is free again."""
        rec = self.runner.engine.store.agent(agent_id)
        if rec is None:
            return
        current = self.current_for(agent_id)
        ours = (current is not None and current.outbound is None) or self.directory.busy_with_voice(agent_id)
        if state in ("INUSE", "RINGING", "BUSY", "RINGINUSE", "ONHOLD"):
            if not ours and rec.presence.value == "ready":
                await self.runner.handle(AgentPresence(agent_id, Presence.NOT_READY, "external-call"))
                self.directory.push_state(agent_id)
        elif state == "NOT_INUSE" and rec.presence.value == "not-ready" and rec.reason == "external-call":
            await self.runner.handle(AgentPresence(agent_id, Presence.READY))
            self.directory.push_state(agent_id)

    async def _answered(self, call: VoiceCall) -> None:
        offer = call.offer
        assert offer is not None
        offer.settled = True
        call.state = "talking"
        try:
            await self.runner.handle(OfferAccepted(call.contact_id, offer.agent_id))
        except RoutingError as e:
            await self._event(call, "routing_refused", ok=False, error=str(e))
        await self._state(call, "answered", agent_id=int(offer.agent_id),
                          events=(("answer", {"agent_leg": call.agent_leg}),))
        if call.handoff is not None:  # answered after a transfer: the interaction is this agent's now
            await _logged(self, call, self.store.update_interaction(call.interaction_id,
                                                                    agent_id=int(offer.agent_id)))
        self._contact_state(call, "talking")
        self.directory.push_state(offer.agent_id)
        if call.queue in self.options.record_queues and call.recording is None and not call.rec_pending:
            call.rec_pending = "start"  # sent off the AMI event pump: MixMonitorStart confirms it
            call.recording_ref = f"interaction-{call.interaction_id}.wav"
            self.spawn(self._start_recording(call))
        elif call.recording is not None:  # transferred: MixMonitor goes on with the caller's channel
            self._recording_state(call)

    async def _ended(self, call: VoiceCall, who: str, cause: str) -> None:
        call.state = "wrapup"
        aid = call.agent_id
        await self._state(call, "ended", events=(("hangup", {"by": who, "cause": cause}),))
        self._contact_state(call, "ended")
        if aid is not None:
            try:
                if not call.outside_routing:
                    await self.runner.handle(ContactFinished(call.contact_id, aid, self.options.wrapup_s))
            except RoutingError as e:
                await self._event(call, "routing_refused", ok=False, error=str(e))
            self._send_wrapup(call)
            self.directory.push_state(aid)
        else:  # nobody to wrap up (handed to a supervisor or an external number)
            call.state = "done"
            self._forget(call)

    def _send_wrapup(self, call: VoiceCall) -> None:
        agent = self.directory.agents.get(call.agent_id or "")
        if agent is None:
            return
        until = datetime.now(UTC) + timedelta(seconds=self.options.wrapup_s)
        call.wrapup_until = until.isoformat()
        self.hub.send(agent.user_id, "wrapup", interaction_id=call.interaction_id,
                      required={"disposition": True, "notes": True}, until=call.wrapup_until)

    async def caller_gone(self, call: VoiceCall, detail: str) -> None:
        """The caller left before an agent answered: abandoned (the engine says so via Ended)."""
        if call.state in ("done", "talking", "wrapup"):
            return
        if call.routed:
            try:
                await self.runner.handle(ContactHungUp(call.contact_id))
                return
            except RoutingError:
                pass
        await self._abandoned(call, detail)

    async def _abandoned(self, call: VoiceCall, detail: str = "caller hung up while queued") -> None:
        if call.state == "done":
            return
        call.state = "done"
        waited = self.mono() - call.queued_mono if call.queued_mono is not None else 0.0
        await self._event(call, "abandon", ok=False, detail=detail, wait_s=round(waited, 3))
        await self._state(call, "abandoned")
        offer = call.offer
        if offer is not None and not offer.settled:  # stored first, then the console is told
            offer.settled = True
            agent = self.directory.agents.get(offer.agent_id)
            if agent is not None:
                self.hub.send(agent.user_id, "offer_withdrawn", offer_id=offer.id,
                              interaction_id=call.interaction_id, reason="caller_abandoned")
                self.directory.push_state(offer.agent_id)
        if call.assigned is not None and not call.assigned.done():
            call.assigned.cancel()
        self._forget(call)

    def _contact_state(self, call: VoiceCall, state: str) -> None:
        call.state_at = datetime.now(UTC).isoformat()
        agent = self.directory.agents.get(call.agent_id or "")
        if agent is not None:
            self.hub.send(agent.user_id, "contact_state", interaction_id=call.interaction_id,
                          state=state, at=call.state_at)

    async def ami_resynced(self, live_linkedids: set[str]) -> None:
        """After an AMI reconnect: calls the PBX no longer has ended while we were blind."""
        for call in list(self.calls.values()):
            if call.carrier != "asterisk" or call.linkedid in live_linkedids \
                    or call.state in ("wrapup", "done", "ivr"):
                continue
            await self._event(call, "ami_gap", ok=False, state=call.state)
            if call.state == "talking":
                await self._ended(call, "unknown", "ended during an AMI outage")
            else:
                await self.caller_gone(call, "ended during an AMI outage")

    # ------------------------------------------------------------------ wrap-up
    def current_for(self, agent_id: str) -> VoiceCall | None:
        for call in self.calls.values():
            if call.agent_id == agent_id and call.state in ("offered", "ringing", "talking", "held",
                                                            "wrapup"):
                return call
        return self.wrapups.get(agent_id)

    def wrapup_done(self, call: VoiceCall) -> None:
        if call.transferred:
            if self.wrapups.get(call.agent_id or "") is call:
                del self.wrapups[call.agent_id or ""]
            return
        call.state = "done"
        self._forget(call)

    def _forget(self, call: VoiceCall) -> None:
        self.calls.pop(call.interaction_id, None)
        self.by_linkedid.pop(call.linkedid, None)

    def spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("voice task failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _path(done: Any) -> list[Any]:
    from ivr import path_as_json

    try:
        return list(path_as_json(done.path))
    except Exception:  # noqa: BLE001 - the path is informative; never fail the call on it
        return []


def pop_path(path: list[Any]) -> list[dict[str, Any]]:
    """The IVR path as the console shows it: one row per node visited, with the digits pressed
    there and what the node decided (lookup results arrive already masked by the flow engine)."""
    out: list[dict[str, Any]] = []
    for step in path[:400]:
        if not isinstance(step, dict):
            continue
        node, event, detail = str(step.get("node", ""))[:64], step.get("event"), step.get("detail")
        row = out[-1] if out and out[-1]["node"] == node else None
        if row is None or event == "enter":
            row = {"node": node}
            out.append(row)
        if event == "digits":
            row["digits"] = (row.get("digits", "") + " " + str(detail)).strip()[:64]
        elif event != "enter":
            row["label"] = str(event)[:200]
            row["result"] = None if detail is None else str(detail)[:200]
    return out[:200]


def _fields(d: Any) -> dict[str, Any]:
    out = {}
    for k in getattr(d, "__slots__", ()):
        v = getattr(d, k)
        out[k] = v if isinstance(v, str | int | float | bool) or v is None else str(v)
    return out


async def _logged(voice: VoiceService, call: VoiceCall, aw: Awaitable[Any]) -> None:
    """A store write whose failure goes on the timeline instead of failing the call."""
    try:
        await aw
    except CrmError as e:
        await voice._event(call, "state_failed", ok=False, error=str(e))


# The IVR's generic dialplan variables (QUEUE, SKILLS, IVR_PATH, ...: docs/ivr.md) are not set
# for a queued call or after the survey: the shipped dialplan reads only ROUTE_TO and CC_SURVEY
# there, and each variable is one AGI round trip.
_OWN_ROUTE_VARIABLES = AgiIvrOptions(route_variables=False)


async def _route_variables(session: AgiSession, done: Any) -> None:
    """The flow's dialplan variables (a transfer, voicemail or hang-up ends the IVR)."""
    if session.closed:
        return
    try:
        for name, value in route_variables(done).items():
            await session.set_variable(name, value)
    except AgiHangupError:
        log.debug("IVR %s: connection gone before the route variables", session.env.channel)


async def _quietly(aw: Awaitable[Any]) -> None:
    """Music on hold and the like: nice to have, never worth failing the call."""
    try:
        await aw
    except AgiCommandError as e:
        log.debug("AGI command failed: %s", e)
