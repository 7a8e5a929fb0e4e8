"""Voice calls carried by Twilio, through the same lifecycle as Asterisk calls.

A Twilio call is a :class:`VoiceCall` in the voice service's own table, so routing's offers, the
pop, the console's acknowledgement, decline, wrap-up and the CRM timeline are the voice service's.
This module replaces only what FastAGI and AMI do there:

    incoming webhook -> identify -> IVR (one <Gather> per question) -> <Enqueue waitUrl=...>
    offer + pop (voice service) -> ack -> REST update of the call to /twilio/connect -> <Dial>
    agent leg status: ringing -> answered -> Dial action / call status: hang-up -> wrap-up

Every webhook is answered once per (CallSid, step): a replay gets the same TwiML and changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from callcenter.ivr_agi import _lookup
from callcenter.services.agents import Agent
from callcenter.services.voice import Softphone, VoiceCall, VoiceService, _path
from callcenter.twilio import questions, twiml
from crm_core.errors import CrmError
from ivr import render_twiml
from ivr.engine import (
    Ask,
    CallLookup,
    Finished,
    FlowState,
    HungUp,
    Input,
    Play,
    Played,
    QueueResult,
    Step,
    SurveyResult,
    TransferResult,
    VoicemailResult,
)
from ivr.render_twiml import TwimlOptions
from routing import Channel, Contact, ContactArrived, Decision, Tier
from routing import Offer as RoutingOffer

log = logging.getLogger(__name__)

ENDED = ("completed", "canceled", "failed", "busy", "no-answer")
NOT_CONNECTED = ("no-answer", "busy", "failed")  # the agent's doing (canceled is the caller's or ours)
KEEP_FINISHED = 2_000  # finished calls remembered for replays (Twilio retries within seconds)


@dataclass(frozen=True)
class TwilioOptions:
    public_base_url: str = ""  # absolute URLs in TwiML start with it ("" means relative URLs)
    hold_music_url: str = ""
    agent_sip_domain: str | None = None
    dial_timeout_s: int = 20
    render: TwimlOptions = field(default_factory=TwimlOptions)


@dataclass
class Leg:
    """What the center knows of one Twilio call (the caller's CallSid)."""

    sid: str
    call: VoiceCall
    mode: str = "ivr"  # ivr, queued, connecting, survey, done
    flow: FlowState | None = None
    language: str = "en"
    step: int = 0  # the number of the current <Gather> (in its action URL)
    attempt: int = 0  # the number of the current agent connection (in the connect/dial URLs)
    target: tuple[str, str] | None = None
    leave: bool = False  # the REST update failed: the wait URL answers <Leave/>
    answered: bool = False
    watching: asyncio.Future[Agent] | None = None
    asking: asyncio.Future[str] | None = None  # a question to the queued caller, awaiting the digits
    ask_no: int = 0
    question: tuple[str, int, int] | None = None  # prompt, timeout (ms), max digits
    farewell: str | None = None  # a prompt played before hanging up (the callback confirmation)
    agent_sid: str | None = None  # the agent leg's CallSid (from its status callbacks)
    start: Callable[[], Any] | None = None  # the incoming webhook's work (run again on a retry)
    replies: dict[str, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TwilioPhone(Softphone):
    """The console's Answer / Hang up buttons for agents on Twilio: Hang up ends the agent's leg
    through the REST API; Answer is the agent's own phone's job."""

    def __init__(self, service: TwilioVoice) -> None:
        self.service = service

    async def answer(self, extension: str) -> bool:
        return False

    async def hangup(self, extension: str) -> bool:
        return await self.service.hangup_agent(extension)


class TwilioVoice:
    """Performs the webhooks' steps on the voice service; registered in ``Center.performers``."""

    def __init__(self, voice: VoiceService, client: Any, options: TwilioOptions,
                 clock: Callable[[], Any] | None = None) -> None:
        self.voice = voice
        self.client = client  # twilio.rest.Client (async http client)
        self.options = options
        self.clock = clock or voice.ivr_clock
        self.legs: dict[str, Leg] = {}
        self.finished: OrderedDict[str, Leg] = OrderedDict()
        self._arriving: dict[str, asyncio.Lock] = {}
        self.by_contact: dict[str, Leg] = {}  # routing's contact id (the interaction) -> live leg

    def url(self, path: str) -> str:
        return self.options.public_base_url.rstrip("/") + path

    def leg(self, sid: str) -> Leg | None:
        return self.legs.get(sid) or self.finished.get(sid)

    # ------------------------------------------------------------------ replay guard
    async def once(self, leg: Leg, key: str, make: Callable[[], Any]) -> str:
        """The TwiML for (CallSid, key): made once; a replay gets the stored answer."""
        async with leg.lock:
            if key in leg.replies:
                log.info("twilio: replayed %s for %s; nothing changed", key, leg.sid)
                return leg.replies[key]
            body: str = await make()
            leg.replies[key] = body
            return body

    # ------------------------------------------------------------------ incoming call
    async def incoming(self, sid: str, caller: str, called: str) -> str:
        lock = self._arriving.setdefault(sid, asyncio.Lock())  # a retry racing the first request
        try:
            async with lock:
                known = self.leg(sid)
                if known is not None:  # a replay; or a retry after a failure, which starts again
                    return await self.once(known, "incoming", known.start or _fail_replay)
                return await self._arrive(sid, caller, called)
        finally:
            if not lock.locked():
                self._arriving.pop(sid, None)

    async def _arrive(self, sid: str, caller: str, called: str) -> str:
        v = self.voice
        interaction = await v.store.open_interaction("voice", "inbound", None, external_id=sid,
                                                     from_address=caller or None, to_address=called or None)
        call = VoiceCall(interaction.id, sid, caller, carrier="twilio")
        call.rec_pending = "twilio"  # no MixMonitor here: the AMI recording path never starts
        leg = Leg(sid, call)
        self.legs[sid] = leg
        self.by_contact[call.contact_id] = leg
        v.calls[call.interaction_id] = call

        async def make() -> str:
            await v._event(call, "arrive", carrier="twilio", call_sid=sid, caller=caller or "anonymous")
            await v._identify(call)
            await v._state(call, "ivr")
            variables = {"caller_id": caller, "caller_name": "", "uniqueid": sid, "dnid": called}
            state, step = v.flow.start(variables, self.clock(), entry="main")
            return await self._run(leg, state, step)

        leg.start = make
        return await self.once(leg, "incoming", make)

    async def failed(self, sid: str, path: str, error: BaseException) -> None:
        """A webhook failed inside the center: on the call's timeline (Twilio then uses the
        number's fallback URL)."""
        leg = self.leg(sid)
        if leg is not None:
            await self.voice._event(leg.call, "twilio_error", ok=False, path=path,
                                    error=f"{type(error).__name__}: {error}"[:300])

    # ------------------------------------------------------------------ the IVR, one webhook at a time
    async def gather(self, leg: Leg, n: int, digits: str | None) -> str:
        async def make() -> str:
            if leg.mode not in ("ivr", "survey") or leg.flow is None or n != leg.step:
                log.warning("twilio: stale gather %s for %s (at %s, %s)", n, leg.sid, leg.step, leg.mode)
                return _hangup() if leg.mode == "done" else await self._current(leg)
            state, step = self.voice.flow.feed(leg.flow, render_twiml.digits_input(digits), self.clock())
            return await self._run(leg, state, step)

        return await self.once(leg, f"gather:{n}", make)

    async def _run(self, leg: Leg, state: FlowState, step: Step) -> str:
        """Perform steps until one needs the caller (a <Gather>) or the flow is over."""
        resp = VoiceResponse()
        while not isinstance(step, Finished):
            inp: Input
            if isinstance(step, Play):
                render_twiml.play(resp, step, self.options.render)
                inp = Played()
            elif isinstance(step, Ask):
                leg.step += 1
                leg.flow = state
                render_twiml.ask(resp, step, self.url(f"/twilio/gather?n={leg.step}"), self.options.render)
                return str(resp)
            else:
                assert isinstance(step, CallLookup)
                inp = await _lookup(step, self.voice.lookups)
            state, step = self.voice.flow.feed(state, inp, self.clock())
        leg.language = step.language
        if leg.mode == "survey":
            await self._survey_done(leg, step)
            resp.hangup()
            body = str(resp)
        else:
            body = await self._ivr_done(leg, step, resp)
        leg.flow = None  # only now: a retry after a failure above answers the last question again
        return body

    async def _ivr_done(self, leg: Leg, done: Finished, resp: VoiceResponse) -> str:
        """The flow's result, as the FastAGI path records it (voice.agi_ivr)."""
        v, call = self.voice, leg.call
        call.ivr_path = _path(done)
        result = done.result
        await v._event(call, "ivr", ok=not done.error, result=result.describe(), path=call.ivr_path,
                       **({"error": done.error} if done.error else {}))
        try:
            await v.store.update_interaction(call.interaction_id, ivr_path=call.ivr_path)
        except CrmError as e:
            await v._event(call, "ivr_path_failed", ok=False, error=str(e))
        if result.kind == "abandoned":
            self.done(leg)
            await v._finish_without_agent(call, "abandoned", "caller hung up in the IVR")
            return _hangup()
        if isinstance(result, QueueResult):
            await self._queue(leg, result.queue or v.options.default_queue, dict(result.skills),
                              float(result.priority_boost))
            self._enqueue(resp, leg)
            return str(resp)
        on_callback = getattr(v, "on_callback", None)
        if result.kind == "callback" and on_callback is not None:
            await on_callback(call, result)  # services/callbacks.py schedules it, as for AGI
        if isinstance(result, TransferResult):
            resp.dial(result.number)
            await v._event(call, "dial", external=result.number)
        elif isinstance(result, VoicemailResult):  # the recording's link goes on the timeline
            resp.record(action=self.url("/twilio/status?leg=voicemail"), method="POST", max_length=120,
                        play_beep=True, finish_on_key="#")
        resp.hangup()
        self.done(leg)
        await v._finish_without_agent(call, "ended", result.describe())
        return str(resp)

    async def _queue(self, leg: Leg, queue: str, skills: dict[str, int], boost: float) -> None:
        """Into routing, as voice._queue does for an AGI call (the caller then waits in <Enqueue>)."""
        v, call = self.voice, leg.call
        if queue not in v.runner.engine.config.queues:
            await v._event(call, "unknown_queue", ok=False, queue=queue)
            queue = v.options.default_queue
        if not skills:
            skills = dict(v.options.queue_skills.get(queue, {}))
        leg.mode = "queued"
        call.queue, call.state, call.queued_mono = queue, "queued", v.mono()
        call.assigned = asyncio.get_running_loop().create_future()
        await v._state(call, "queued", queue=queue,
                       events=(("queue", {"queue": queue, "skills": skills, "priority": boost}),))
        contact = Contact(call.contact_id, Channel.VOICE, queue, v.mono(),
                          customer_id=str(call.customer_id or ""), tier=Tier(call.tier), skills=skills,
                          priority=boost)
        call.routed = True
        call.session = questions.Prompter(self, leg)  # a callback offer asks the waiting caller through it
        self._watch(leg)
        await v.runner.handle(ContactArrived(contact))

    def _enqueue(self, resp: VoiceResponse, leg: Leg) -> None:
        twiml.enqueue(resp, leg.call.queue or self.voice.options.default_queue,
                      self.url("/twilio/wait"), self.url(f"/twilio/dequeued?a={leg.attempt}"))

    async def _current(self, leg: Leg) -> str:
        """Where the caller should be now (a stale or unexpected webhook)."""
        resp = VoiceResponse()
        if leg.mode in ("queued", "connecting") and leg.call.state in ("queued", "offered", "ringing"):
            self._enqueue(resp, leg)
        else:
            resp.hangup()
        return str(resp)

    # ------------------------------------------------------------------ routing decisions
    async def perform(self, decisions: list[Decision]) -> set[str]:
        """Offers for Twilio calls: the voice service sends the pop; here the caller is connected
        once the offer is acknowledged (or its ack times out). Other contacts are not ours."""
        for d in decisions:
            if not isinstance(d, RoutingOffer):
                continue
            leg = self._by_contact(d.contact_id)
            if leg is not None:
                self._watch(leg)
        return set()

    def _watch(self, leg: Leg) -> None:
        """Wait for the call's assignment (an agent, or None for a callback taken instead)."""
        fut = leg.call.assigned
        if fut is None or fut.done() or leg.watching is fut:
            return
        leg.watching = fut
        self.voice.spawn(self._connect_when_assigned(leg, fut))

    def _by_contact(self, contact_id: str) -> Leg | None:
        return self.by_contact.get(contact_id)

    async def _connect_when_assigned(self, leg: Leg, fut: asyncio.Future[Agent]) -> None:
        try:
            agent = await fut
        except asyncio.CancelledError:
            return  # the caller left
        v, call = self.voice, leg.call
        if agent is None:  # the caller took a callback instead of waiting (services/callbacks.py)
            await questions.callback_taken(self, leg)
            return
        if leg.mode not in ("queued", "connecting") or call.state != "offered":
            return
        target = twiml.dial_target(agent.extension, self.options.agent_sip_domain)
        if target is None:
            await v._event(call, "dial", ok=False, agent=agent.username, error="no number or SIP address")
            await v.no_answer(call, "CHANUNAVAIL")
            return
        leg.attempt += 1
        leg.target, leg.mode = target, "connecting"
        await v._event(call, "dial", agent=agent.username, target=target[1], carrier="twilio")
        if not await self._update(leg, f"/twilio/connect?a={leg.attempt}"):
            leg.leave = True  # the wait URL answers <Leave/>; <Enqueue>'s action then dials

    # ------------------------------------------------------------------ connecting the agent
    async def connect(self, leg: Leg, a: int) -> str:
        async def make() -> str:
            resp = VoiceResponse()
            if a != leg.attempt or leg.target is None or leg.mode != "connecting":
                return await self._current(leg)
            leg.leave = False
            twiml.dial(resp, leg.target, self.url(f"/twilio/dial?a={a}"),
                       self.url(f"/twilio/status?leg=agent&a={a}"), self.options.dial_timeout_s)
            return str(resp)

        return await self.once(leg, f"connect:{a}", make)

    async def dequeued(self, leg: Leg, a: int, result: str) -> str:
        """<Enqueue>'s action: the caller left the Twilio queue (``leave`` after the wait URL's
        <Leave/>: connect now; ``hangup``: the status callback ends the call)."""
        if result == "leave" and leg.mode == "connecting":
            return await self.connect(leg, leg.attempt)
        if result in ("hangup", "redirected", "bridged", "bridging-in-process"):
            return str(VoiceResponse())
        return await self._current(leg)

    def wait(self, leg: Leg, twilio_position: str | None) -> str:
        """The wait URL: <Leave/> once an agent is waiting for this caller (if the REST update
        failed), else the caller's place in the routing queue and hold music."""
        resp = VoiceResponse()
        if leg.mode == "connecting" and leg.leave:
            resp.leave()
            return str(resp)
        if leg.mode not in ("queued", "connecting"):
            resp.hangup()
            return str(resp)
        position = self._position(leg)
        if position is None and twilio_position and twilio_position.isdigit():
            position = int(twilio_position)
        twiml.hold(resp, position, leg.language, self.options.hold_music_url, self.options.render)
        return str(resp)

    def _position(self, leg: Leg) -> int | None:
        queue, n = leg.call.queue, 0
        for cid, _key in self.voice.runner.engine.waiting(1000):
            other = self.voice.calls.get(int(cid)) if cid.isdigit() else None
            if other is not None and other.queue == queue:
                n += 1
                if other is leg.call:
                    return n
        return None

    async def agent_status(self, leg: Leg, a: int, status: str, agent_sid: str = "") -> None:
        """The agent leg's status callbacks: ringing, answered (in-progress), then completed."""
        async def make() -> str:
            v, call = self.voice, leg.call
            if a != leg.attempt:
                return ""
            if agent_sid:
                leg.agent_sid = agent_sid
            if call.offer is None or call.state == "queued":
                if leg.mode == "connecting" and status in ("ringing", "in-progress", "answered"):
                    await self._back_to_queue(leg)  # the offer was withdrawn while the phone rang
                return ""
            if status == "ringing" and call.state == "offered":
                call.state = "ringing"
                await v._event(call, "ring", device=leg.target[1] if leg.target else "", carrier="twilio")
                v._contact_state(call, "ringing")
            elif status in ("in-progress", "answered") and call.state in ("offered", "ringing"):
                leg.answered = True
                await v._answered(call)
            elif status in NOT_CONNECTED:
                await self._not_connected(leg, status)
            return ""

        await self.once(leg, f"agent:{a}:{status}", make)

    async def _back_to_queue(self, leg: Leg) -> None:
        """Take the caller off an agent leg that is no longer theirs (declined, console gone):
        the REST update ends the <Dial>; the new URL puts the caller back in the Twilio queue."""
        leg.attempt += 1
        leg.mode, leg.target = "queued", None
        self._watch(leg)
        await self._update(leg, f"/twilio/connect?a={leg.attempt}")

    async def _update(self, leg: Leg, path: str) -> bool:
        """Point the caller's live call at ``path`` (REST API); a failure goes on the timeline."""
        try:
            await self.client.calls(leg.sid).update_async(url=self.url(path), method="POST")
            return True
        except Exception as e:  # noqa: BLE001 - Twilio down or refusing
            await self.voice._event(leg.call, "redirect", ok=False, error=f"{type(e).__name__}: {e}"[:300])
            return False

    async def _not_connected(self, leg: Leg, status: str) -> None:
        """No answer, busy, failed: back to the queue with the place kept (the engine's decline)."""
        await self.voice.no_answer(leg.call, status.replace("-", "").upper())
        if leg.call.state in ("queued", "offered"):
            leg.mode, leg.target = "queued", None
            self._watch(leg)

    async def dial_done(self, leg: Leg, a: int, status: str) -> str:
        """<Dial>'s action: the agent leg is over and the caller is still on the line."""
        async def make() -> str:
            v, call = self.voice, leg.call
            resp = VoiceResponse()
            if a != leg.attempt:
                return await self._current(leg)
            if status in NOT_CONNECTED:
                await self._not_connected(leg, status)
                return await self._current(leg)
            if status == "canceled":
                return await self._current(leg)
            if call.state in ("talking", "held"):
                await v._ended(call, "agent", "")
            if leg.answered and v.options.survey:
                leg.mode = "survey"
                state, step = v.flow.start({"caller_id": call.caller}, self.clock(), entry="survey",
                                           language=leg.language)
                return await self._run(leg, state, step)
            self.done(leg)
            resp.hangup()
            return str(resp)

        return await self.once(leg, f"dial:{a}", make)

    async def _survey_done(self, leg: Leg, done: Finished) -> None:
        """The post-call survey's score, recorded as the AGI survey records it."""
        v, iid = self.voice, leg.call.interaction_id
        self.done(leg)
        score = done.result.score if isinstance(done.result, SurveyResult) else None
        try:
            if score is None:
                await v.store.append_event(iid, "survey", ok=False, data={"detail": done.result.describe()})
                return
            interaction = await v.store.get_interaction(iid)
            await v.store.record_survey(int(score), interaction_id=iid, customer_id=interaction.customer_id,
                                        channel="voice")
            await v.store.append_event(iid, "survey", data={"score": int(score)})
        except CrmError as e:
            await v.store.append_event(iid, "survey", ok=False, data={"error": str(e)})

    # ------------------------------------------------------------------ the caller's call status
    async def call_status(self, leg: Leg, status: str) -> None:
        """The caller's call ended (completed, canceled...): as AMI's Hangup of the caller."""
        if status not in ENDED:
            return

        async def make() -> str:
            v, call = self.voice, leg.call
            mode, leg.mode = leg.mode, "done"
            if mode == "done" or call.state == "done":
                pass  # the call was over for the center already (IVR end, callback taken...)
            elif mode in ("ivr", "survey") and leg.flow is not None:
                state, step = v.flow.feed(leg.flow, HungUp(), self.clock())
                leg.mode = mode
                await self._run(leg, state, step)
                leg.mode = "done"
            elif call.state in ("talking", "held"):
                await v._ended(call, "caller", status)
            elif call.state in ("queued", "offered", "ringing"):
                await v.caller_gone(call, "caller hung up")
            self._finish(leg)
            return ""

        await self.once(leg, f"status:{status}", make)

    async def voicemail(self, leg: Leg, url: str, duration: str) -> str:
        """<Record>'s action: the message's recording, on the interaction's timeline."""
        async def make() -> str:
            ok = url.startswith("https://")
            await self.voice._event(leg.call, "voicemail", ok=ok, recording_url=url[:500] if ok else None,
                                    duration_s=int(duration) if duration.isdigit() else None)
            return _hangup()

        return await self.once(leg, "voicemail", make)

    async def hangup_agent(self, extension: str) -> bool:
        """The console's Hang up on a Twilio call: the REST API ends the agent's leg; <Dial>'s
        action then reports it as the agent hanging up (wrap-up, the caller's survey)."""
        for leg in self.legs.values():
            agent = self.voice.directory.agents.get(leg.call.agent_id or "")
            if (agent is not None and agent.extension == extension and leg.agent_sid
                    and leg.call.state in ("talking", "held")):
                try:
                    await self.client.calls(leg.agent_sid).update_async(status="completed")
                    return True
                except Exception as e:  # noqa: BLE001 - refused: the console says it cannot
                    await self.voice._event(leg.call, "hangup", ok=False, by="agent",
                                            error=f"{type(e).__name__}: {e}"[:300])
                    return False
        return False

    def done(self, leg: Leg) -> None:
        """The call is over for the center (the TwiML hangs up): stop tracking it as live, keep
        it for replays and the final status callback."""
        leg.mode = "done"
        self._finish(leg)

    def _finish(self, leg: Leg) -> None:
        self.legs.pop(leg.sid, None)
        self.by_contact.pop(leg.call.contact_id, None)
        self.finished[leg.sid] = leg
        while len(self.finished) > KEEP_FINISHED:
            self.finished.popitem(last=False)


def _hangup() -> str:
    resp = VoiceResponse()
    resp.hangup()
    return str(resp)


async def _fail_replay() -> str:  # pragma: no cover - an incoming replay always finds its answer
    return _hangup()
