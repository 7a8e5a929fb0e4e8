"""A simulated Twilio for the tests: it plays callers through the center's TwiML over real HTTP,
signing every webhook exactly as Twilio does (the library's RequestValidator computes the
signature over the public URL), and a fake of the REST Calls API that records what was asked.

Time is scaled (``scale``): a 20 s <Dial timeout> rings for 20 * scale seconds."""
from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
_ids = itertools.count(1)
SIGN = object()  # post(): sign as Twilio does


def new_sid(prefix: str = "CA") -> str:
    return f"{prefix}{next(_ids):032x}"


@dataclass
class AgentPhone:
    """How an agent's phone behaves when dialled."""

    answer_after: float = 0.05  # seconds (real time)
    never_answer: bool = False
    busy: bool = False
    talk_time: float | None = None  # the agent hangs up after this; None: only when told


@dataclass
class Webhook:
    url: str  # as Twilio requested it (the signed URL)
    params: dict[str, str]
    status: int
    body: str


class FakeRest:
    """The Calls API: ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``."""

    def __init__(self) -> None:
        self.twilio: SimTwilio | None = None  # set once the simulated Twilio runs
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer this many requests with 500
        self.app = web.Application()
        self.app.router.add_post("/2010-04-01/Accounts/{acc}/Calls/{sid}.json", self.update)

    async def update(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        auth = aiohttp.BasicAuth.decode(request.headers.get("Authorization", ""))
        rec = {"path": request.path, "sid": request.match_info["sid"], "form": form, "user": auth.login,
               "password_ok": auth.password == AUTH_TOKEN}
        self.requests.append(rec)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"code": 20500, "message": "internal error", "status": 500}, status=500)
        assert self.twilio is not None
        sid = request.match_info["sid"]
        parent = self.twilio.agent_legs.get(sid)
        if parent is not None and form.get("Status") == "completed":  # end an agent leg
            parent.agent_hangup()
            return web.json_response({"sid": sid, "account_sid": ACCOUNT_SID, "status": "completed"})
        call = self.twilio.calls.get(sid)
        if call is None or call.ended.is_set():
            return web.json_response({"code": 20404, "message": "not found", "status": 404}, status=404)
        if form.get("Url"):
            call.interrupt(("redirect", str(form["Url"])))
        elif form.get("Twiml"):
            call.interrupt(("twiml", str(form["Twiml"])))
        elif form.get("Status") == "completed":
            call.interrupt(("hangup", ""))
        return web.json_response({"sid": call.sid, "account_sid": ACCOUNT_SID, "status": "in-progress"})


class SimTwilio:
    def __init__(self, local_base: str, public_base: str | None, rest: FakeRest, *, scale: float = 0.02,
                 wait_poll: float = 0.3) -> None:
        self.local_base = local_base
        self.public_base = public_base or local_base
        self.validator = RequestValidator(AUTH_TOKEN)
        self.scale = scale
        self.wait_poll = wait_poll
        self.calls: dict[str, SimCall] = {}
        self.agent_legs: dict[str, SimCall] = {}  # an agent leg's sid -> the caller's call
        self.agents: dict[str, AgentPhone] = {}
        self.webhooks: list[Webhook] = []
        self.session: aiohttp.ClientSession | None = None
        self.rest = rest
        rest.twilio = self

    def agent(self, address: str, **behaviour: Any) -> AgentPhone:
        phone = AgentPhone(**behaviour)
        self.agents[address] = phone
        return phone

    def call(self, caller: str, digits: list[str | None] | None = None, to: str = "+15550001000") -> SimCall:
        c = SimCall(self, new_sid(), caller, to, list(digits or []))
        self.calls[c.sid] = c
        c.task = asyncio.ensure_future(c.run())
        return c

    # ------------------------------------------------------------------ signed requests
    def local(self, url: str) -> str:
        if url.startswith(self.public_base):
            return self.local_base + url[len(self.public_base):]
        return url

    async def post(self, url: str, params: dict[str, str], *, signature: object = SIGN,
                   sign_url: str | None = None) -> Webhook:
        """POST ``params`` to ``url`` (a public URL), signed over ``sign_url or url``; ``signature``
        None sends no signature header, a string sends that one."""
        assert self.session is not None
        headers = {}
        if signature is SIGN:
            signature = self.validator.compute_signature(sign_url or url, params)
        if isinstance(signature, str):
            headers["X-Twilio-Signature"] = signature
        async with self.session.post(self.local(url), data=params, headers=headers) as r:
            hook = Webhook(url, params, r.status, await r.text())
        self.webhooks.append(hook)
        return hook


@asynccontextmanager
async def sim_twilio(local_base: str, public_base: str | None, rest: FakeRest,
                     **kw: Any) -> AsyncIterator[SimTwilio]:
    sim = SimTwilio(local_base, public_base, rest, **kw)
    async with aiohttp.ClientSession() as session:
        sim.session = session
        try:
            yield sim
        finally:
            for c in list(sim.calls.values()):
                if c.task is not None:
                    c.task.cancel()
            await asyncio.gather(*(c.task for c in sim.calls.values() if c.task), return_exceptions=True)


class _Hangup(Exception):
    pass


class _Redirect(Exception):
    """The REST API moved the call: to a URL, or (``kind`` twiml) to the given TwiML."""

    def __init__(self, url: str, kind: str = "redirect") -> None:
        self.url, self.kind = url, kind


@dataclass
class SimCall:
    twilio: SimTwilio
    sid: str
    caller: str
    to: str
    digits: list[str | None]
    verbs: list[tuple[str, dict[str, str], str]] = field(default_factory=list)  # (verb, attrs, text)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Future[None] | None = None
    status: str = "ringing"
    agent_leg: str | None = None
    _interrupts: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    _agent_hangup: asyncio.Event = field(default_factory=asyncio.Event)
    gathered: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # action URL of each <Gather>

    # ------------------------------------------------------------------ what the test does
    def hangup(self) -> None:
        self.interrupt(("hangup", ""))

    def agent_hangup(self) -> None:
        self._agent_hangup.set()

    def interrupt(self, what: tuple[str, str]) -> None:
        self._interrupts.put_nowait(what)

    def said(self) -> list[str]:
        return [text for verb, _a, text in self.verbs if verb == "Say"]

    async def wait_ended(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.ended.wait(), timeout)

    # ------------------------------------------------------------------ the call
    def params(self, **extra: str) -> dict[str, str]:
        return {"AccountSid": ACCOUNT_SID, "CallSid": self.sid, "From": self.caller, "To": self.to,
                "CallStatus": self.status, "Direction": "inbound", "ApiVersion": "2010-04-01", **extra}

    async def run(self) -> None:
        url = self.twilio.public_base + "/twilio/voice"
        try:
            doc = (await self.twilio.post(url, self.params())).body
            self.status = "in-progress"
            while doc is not None:
                try:
                    doc, url = await self._document(doc, url)
                except _Redirect as r:
                    if r.kind == "twiml":
                        doc = r.url
                        continue
                    url = r.url
                    doc = (await self.twilio.post(url, self.params())).body
        except _Hangup:
            pass
        finally:
            self.status = "completed"
            if not self.ended.is_set():
                await self.twilio.post(self.twilio.public_base + "/twilio/status",
                                       self.params(CallDuration="1"))
                self.ended.set()

    async def _interruptible(self, aw: Any, timeout: float | None) -> Any:
        """Wait for ``aw`` (or ``timeout``); a hang-up or REST redirect raises."""
        get = asyncio.ensure_future(self._interrupts.get())
        task = asyncio.ensure_future(aw) if aw is not None else None
        waiting = {get} | ({task} if task else set())
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            if task:
                task.cancel()
            kind, url = get.result()
            if kind == "hangup":
                raise _Hangup
            raise _Redirect(url, kind)
        get.cancel()
        if task is not None and task in done:
            return task.result()
        if task:
            task.cancel()
        return None

    def _check(self) -> None:
        if not self._interrupts.empty():
            kind, url = self._interrupts.get_nowait()
            if kind == "hangup":
                raise _Hangup
            raise _Redirect(url, kind)

    async def _document(self, doc: str, url: str) -> tuple[str | None, str]:
        root = ET.fromstring(doc)
        assert root.tag == "Response", doc
        for verb in root:
            self._check()
            self.verbs.append((verb.tag, dict(verb.attrib), (verb.text or "").strip()))
            if verb.tag == "Gather":
                for child in verb:
                    self.verbs.append((child.tag, dict(child.attrib), (child.text or "").strip()))
                action = urljoin(url, verb.attrib.get("action", url))
                self.gathered.put_nowait(action)
                if not self.digits:
                    await self._interruptible(None, None)  # silent until hung up or redirected
                pressed = self.digits.pop(0)
                return (await self.twilio.post(action, self.params(Digits=pressed or ""))).body, action
            if verb.tag == "Redirect":
                target = urljoin(url, (verb.text or "").strip())
                return (await self.twilio.post(target, self.params())).body, target
            if verb.tag == "Hangup":
                return None, url
            if verb.tag == "Record":  # the caller speaks; then the action (default: this URL again)
                target = urljoin(url, verb.attrib.get("action", url))
                rec = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{new_sid('RE')}"
                body = (await self.twilio.post(target, self.params(RecordingUrl=rec, RecordingDuration="7",
                                                                   Digits="#"))).body
                return body, target
            if verb.tag == "Enqueue":
                return await self._enqueue(verb, url)
            if verb.tag == "Dial":
                return await self._dial(verb, url)
        return None, url

    async def _enqueue(self, verb: ET.Element, url: str) -> tuple[str | None, str]:
        wait_url = urljoin(url, verb.attrib["waitUrl"])
        action = urljoin(url, verb.attrib.get("action", url))
        position = 1
        try:
            while True:
                hold = (await self.twilio.post(wait_url, self.params(
                    QueueSid="QU" + "1" * 32, QueuePosition=str(position), QueueTime="0",
                    AvgQueueTime="0", CurrentQueueSize=str(position)))).body
                tags = [v.tag for v in ET.fromstring(hold)]
                for v in ET.fromstring(hold):
                    self.verbs.append(("wait:" + v.tag, dict(v.attrib), (v.text or "").strip()))
                if "Leave" in tags:
                    left = await self.twilio.post(action, self.params(QueueResult="leave", QueueTime="1"))
                    return left.body, action
                if "Hangup" in tags:
                    return None, url
                await self._interruptible(None, self.twilio.wait_poll)
        except _Hangup:
            await self.twilio.post(action, self.params(QueueResult="hangup", QueueTime="1"))
            raise

    async def _dial(self, verb: ET.Element, url: str) -> tuple[str | None, str]:
        action = urljoin(url, verb.attrib.get("action", url))
        timeout = float(verb.attrib.get("timeout", "30")) * self.twilio.scale
        noun = next(iter(verb))
        self.verbs.append((noun.tag, dict(noun.attrib), (noun.text or "").strip()))
        address = (noun.text or "").strip()
        status_url = urljoin(url, noun.attrib.get("statusCallback", ""))
        phone = self.twilio.agents.get(address, AgentPhone())
        leg = self.agent_leg = new_sid()
        self.twilio.agent_legs[leg] = self

        async def agent_status(status: str) -> None:
            if status_url:
                await self.twilio.post(status_url, self.params(CallSid=leg, ParentCallSid=self.sid,
                                                               CallStatus=status, Direction="outbound-dial",
                                                               To=address))

        async def finish(dial_status: str) -> tuple[str | None, str]:
            await agent_status(dial_status)
            body = (await self.twilio.post(action, self.params(DialCallStatus=dial_status,
                                                               DialCallSid=leg))).body
            return body, action

        await agent_status("initiated")
        if phone.busy:
            return await finish("busy")
        await agent_status("ringing")
        answered = False
        try:
            if phone.never_answer or phone.answer_after > timeout:
                await self._interruptible(None, timeout)
                return await finish("no-answer")
            await self._interruptible(None, phone.answer_after)
            answered = True
            await agent_status("in-progress")
            self._agent_hangup.clear()
            await self._interruptible(self._agent_hangup.wait(), phone.talk_time)
            return await finish("completed")
        except (_Hangup, _Redirect):
            await agent_status("completed" if answered else "canceled")
            raise
