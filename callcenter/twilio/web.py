"""The webhook endpoints. Every request is checked against its signature first: a missing or wrong
signature gets 403, is logged, and changes nothing.

    POST /twilio/voice      incoming call (the phone number's "A call comes in" webhook)
    POST /twilio/gather     a <Gather>'s digits (?n=<question>)
    POST /twilio/wait       <Enqueue waitUrl>: position and hold music, or <Leave/>
    POST /twilio/dequeued   <Enqueue action>: the caller left the Twilio queue
    POST /twilio/connect    the REST update's URL: <Dial> the agent (?a=<attempt>)
    POST /twilio/dial       <Dial action>: the agent leg ended (?a=<attempt>)
    POST /twilio/status     status callbacks: the caller's call, or the agent leg (?leg=agent&a=...);
                            <Record>'s action (?leg=voicemail)
    POST /twilio/offer      a question to a queued caller (the callback offer, ?k=N), and its answer
"""
from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from twilio.twiml.voice_response import VoiceResponse

from callcenter.keys import CENTER, SETTINGS
from callcenter.twilio import questions
from callcenter.twilio.rest import make_client
from callcenter.twilio.service import Leg, TwilioOptions, TwilioPhone, TwilioVoice
from callcenter.twilio.signature import is_signed, public_url
from ivr.render_twiml import TwimlOptions

log = logging.getLogger(__name__)

TWILIO = web.AppKey("twilio", TwilioVoice)
TOKEN = web.AppKey("twilio_token", str)
_SID = re.compile(r"[A-Za-z0-9]{1,64}")


def setup(app: web.Application) -> None:
    """Mount the webhooks and start the service with the app (after the center)."""
    app.router.add_post("/twilio/voice", _handler(_incoming, needs_call=False))
    app.router.add_post("/twilio/gather", _handler(_gather))
    app.router.add_post("/twilio/wait", _handler(_wait))
    app.router.add_post("/twilio/dequeued", _handler(_dequeued))
    app.router.add_post("/twilio/connect", _handler(_connect))
    app.router.add_post("/twilio/dial", _handler(_dial))
    app.router.add_post("/twilio/status", _handler(_status))
    app.router.add_post("/twilio/offer", _handler(_offer))
    app.cleanup_ctx.append(_twilio_ctx)


async def _twilio_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    t = s.twilio
    token = t.resolved_token()
    if not t.account_sid or not token:
        raise RuntimeError("twilio.enabled needs twilio.account_sid and twilio.auth_token "
                           "(or twilio.auth_token_file)")
    client, http = make_client(t.account_sid, token, t.api_base_url)
    center = app[CENTER]
    render = TwimlOptions(sounds_base_url=t.sounds_base_url, voice=t.voice)
    options = TwilioOptions(public_base_url=_public_base(app) or "", hold_music_url=t.hold_music_url,
                            agent_sip_domain=t.agent_sip_domain, dial_timeout_s=t.dial_timeout_s,
                            render=render)
    service = TwilioVoice(center.voice, client, options)
    center.performers.append(service)
    if center.voice.softphone is None:  # the demo's simulated phones keep theirs
        center.voice.softphone = TwilioPhone(service)
    app[TWILIO] = service
    app[TOKEN] = token
    try:
        yield
    finally:
        if service in center.performers:
            center.performers.remove(service)
        await http.close()


def _public_base(app: web.Application) -> str | None:
    s = app[SETTINGS]
    base: str | None = s.twilio.public_base_url or s.http.public_base_url
    return base


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


Handler = Callable[[TwilioVoice, Any, web.Request], Awaitable[web.Response]]


def _handler(fn: Handler, *, needs_call: bool = True) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        params = await request.post()
        app = request.app
        if not is_signed(request, params, app[TOKEN], _public_base(app)):
            log.warning("twilio: refused %s from %s (%s signature), CallSid %r", request.path,
                        request.remote, "wrong" if "X-Twilio-Signature" in request.headers else "missing",
                        str(params.get("CallSid", ""))[:64])
            raise web.HTTPForbidden(text="invalid Twilio signature")
        service = app[TWILIO]
        # the agent leg's callbacks carry its own CallSid; the caller's is the parent
        agent_leg = request.query.get("leg") == "agent"
        sid = str(params.get("ParentCallSid" if agent_leg else "CallSid", ""))
        if not _SID.fullmatch(sid):
            raise web.HTTPBadRequest(text="CallSid missing or malformed")
        if len(str(params.get("Digits", ""))) > 4096:
            raise web.HTTPBadRequest(text="Digits too long")
        try:
            if not needs_call:
                return await fn(service, params, request)
            leg = service.leg(sid)
            if leg is None:
                return _unknown(request, sid, public_url(request, _public_base(app)))
            return await fn(service, (leg, params), request)
        except web.HTTPException:
            raise
        except Exception as e:
            # 500: Twilio then fetches the number's fallback URL, so the caller is not dropped
            log.exception("twilio: %s failed for call %s", request.path, sid)
            try:
                await service.failed(sid, request.path, e)
            except Exception:  # noqa: BLE001 - the store may be what failed
                log.exception("twilio: could not log the failure of call %s", sid)
            raise web.HTTPInternalServerError(text="the contact center failed on this step") from None

    return handle


def _unknown(request: web.Request, sid: str, url: str) -> web.Response:
    """A signed request for a call we do not know (a restart lost it): nothing changes. A status
    callback is acknowledged; a caller is sent to the start, so no call is dropped."""
    log.warning("twilio: %s for an unknown call %s", request.path, sid)
    resp = VoiceResponse()
    if request.path != "/twilio/status":
        resp.redirect(url.split("/twilio/", 1)[0] + "/twilio/voice", method="POST")
    return _xml(str(resp))


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name, "")
    if not raw.isdigit() or len(raw) > 6:
        raise web.HTTPBadRequest(text=f"{name} missing or not a number")
    return int(raw)


async def _incoming(service: TwilioVoice, params: Any, request: web.Request) -> web.Response:
    caller = str(params.get("From", ""))[:64]
    if not caller.startswith("+") or not caller[1:].isdigit():
        caller = ""  # anonymous, restricted, or a client: not a phone number
    return _xml(await service.incoming(str(params["CallSid"]), caller, str(params.get("To", ""))[:64]))


async def _gather(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, params = lp
    return _xml(await service.gather(leg, _int(request, "n"), params.get("Digits")))


async def _wait(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, params = lp
    return _xml(service.wait(leg, str(params.get("QueuePosition", ""))[:6]))


async def _dequeued(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, params = lp
    return _xml(await service.dequeued(leg, _int(request, "a"), str(params.get("QueueResult", ""))[:32]))


async def _connect(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, _params = lp
    return _xml(await service.connect(leg, _int(request, "a")))


async def _dial(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, params = lp
    return _xml(await service.dial_done(leg, _int(request, "a"), str(params.get("DialCallStatus", ""))[:32]))


async def _status(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, params = lp
    status = str(params.get("CallStatus", ""))[:32]
    if request.query.get("leg") == "voicemail":
        return _xml(await service.voicemail(leg, str(params.get("RecordingUrl", "")),
                                            str(params.get("RecordingDuration", ""))[:8]))
    if request.query.get("leg") == "agent":
        await service.agent_status(leg, _int(request, "a"), status, str(params.get("CallSid", ""))[:64])
    else:
        await service.call_status(leg, status)
    return _xml(str(VoiceResponse()))


async def _offer(service: TwilioVoice, lp: tuple[Leg, Any], request: web.Request) -> web.Response:
    leg, params = lp
    k = _int(request, "k")
    if request.query.get("answer") == "1":
        return _xml(await questions.offer_answer(service, leg, k, params.get("Digits")))
    return _xml(await questions.offer_question(service, leg, k))
