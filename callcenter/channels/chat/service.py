"""Web chats: from the widget's first frame to the agent's wrap-up.

A chat is an interaction (channel `chat`) and a routing contact whose id is the interaction id.
Every message gets the chat's next sequence number and is sent to anyone only once stored
(crm_core.chat.ChatLog); the stored copy echoed to the sender is its acknowledgement. Widgets and
consoles that reconnect are sent what they missed, by sequence number, never twice.

Lifecycle: start (pre-chat form or signed identity) -> [bot] -> queued -> offered -> active ->
ended (survey for the customer, wrap-up for the agent) -> done. A customer who leaves while
queued abandons; one whose socket drops has `resume_s` to come back.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.channels.chat import identity, waiting
from callcenter.channels.chat.agent_side import AgentSide
from callcenter.channels.chat.content import ContentRefused, check_text, render_html
from callcenter.channels.chat.limits import KeyedBuckets, TokenBucket
from callcenter.channels.chat.state import MAX_BACKLOG, REPLAY_LIMIT, Chat, ChatOptions, Site
from callcenter.channels.chat.state import msg as _msg
from callcenter.facade import MessageRefused
from callcenter.services.agents import AgentDirectory
from callcenter.services.consoles import ConsoleHub
from callcenter.services.routing_runner import RoutingRunner
from crm_core.chat import ChatLog, StoredMessage
from crm_core.errors import CrmError, NotFound
from crm_core.store import CrmStore
from routing import (
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactStatus,
    Decision,
    Ended,
    OfferDeclined,
    Presence,
    Requeue,
    RoutingError,
    Tier,
)
from routing import Offer as RoutingOffer

log = logging.getLogger(__name__)
REFRESH_GAP_S = 0.25  # shared routing store: the wait positions are refreshed at most this often


class WidgetLink:
    """One widget websocket: its outgoing queue, its chat, its rate limit."""

    def __init__(self, service: ChatService, site: str, origin: str, remote: str) -> None:
        self.service, self.site, self.origin, self.remote = service, site, origin, remote
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.chat: Chat | None = None
        self.closed = False
        self.last_seq = 0
        self.hold: list[dict[str, Any]] | None = None
        o = service.options
        self.bucket = TokenBucket(o.rate_per_session, o.burst_per_session, service.mono)

    def put(self, msg: dict[str, Any], *, ack: bool = False) -> None:
        """Queue a message for the socket. Stored messages go out once each, in order (a message
        at or below the last one sent is dropped), except `ack`: the answer to a resend."""
        if self.closed:
            return
        seq = msg.get("seq") if msg.get("type") == "message" and not ack else None
        if seq is not None:
            if self.hold is not None:
                self.hold.append(msg)
                return
            if seq <= self.last_seq:
                return
            self.last_seq = seq
        if self.queue.qsize() >= MAX_BACKLOG:
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(msg)

    def release(self) -> None:
        held, self.hold = self.hold or [], None
        for m in sorted(held, key=lambda m: m["seq"]):
            self.put(m)

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            msg = await self.queue.get()
            if msg is None:
                return
            yield msg

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
        await self.service.widget_closed(self)




def _iso(dt: datetime) -> str:
    return dt.isoformat()


class ChatService(AgentSide):
    def __init__(self, store: CrmStore, runner: RoutingRunner, directory: AgentDirectory,
                 hub: ConsoleHub, options: ChatOptions, *, bot: Any = None,
                 lookups: Mapping[str, Callable[..., Awaitable[Any]]] | None = None,
                 mono: Callable[[], float] = time.monotonic,
                 ivr_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.runner, self.directory, self.hub = store, runner, directory, hub
        self.options = options
        self.bot = bot  # an ivr.ChatBot, or None: straight to the queue
        self.lookups = dict(lookups or {})
        self.mono = mono
        self.ivr_clock = ivr_clock
        self.log = ChatLog(store.db)
        # async (to, subject, body): sends an email (the email channel's smarthost), if any
        self.mailer: Callable[[str, str, str], Awaitable[None]] | None = None
        self.chats: dict[int, Chat] = {}
        self.watchers: list[Callable[[Chat, dict[str, Any]], None]] = []  # (chat, message) once stored
        self.ip_limits = KeyedBuckets(options.rate_per_ip, options.burst_per_ip, mono)
        self._secret = secrets.token_bytes(32)  # resume tokens of this process's chats
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._refreshing = False  # one position refresh at a time (see _refresh_positions)
        self._refresh_again = False
        # chat starts write a customer and an interaction: a few at a time, so that a burst of
        # visitors queues here instead of piling up on the database's write lock
        self._starting = asyncio.Semaphore(4)
        self.widget_handlers: dict[str, Callable[[WidgetLink, dict[str, Any]], Awaitable[Any]]] = {
            "start": self.w_start, "resume": self.w_resume, "send": self.w_send, "typing": self.w_typing,
            "seen": self.w_seen, "end": self.w_end, "survey": self.w_survey,
            "leave_message": self.w_leave_message, "transcript": self.w_transcript,
        }

    # ------------------------------------------------------------------ plumbing
    def spawn(self, aw: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chat task failed", exc_info=task.exception())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
        for chat in self.chats.values():
            if chat.gone is not None:
                chat.gone.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.log.close()

    async def _event(self, chat: Chat, kind: str, ok: bool = True, **data: Any) -> None:
        try:
            await self.store.append_event(chat.interaction_id, kind, ok=ok, data=data)
        except CrmError:
            log.exception("timeline append failed for chat %s", chat.interaction_id)

    async def _state(self, chat: Chat, state: str, **kw: Any) -> None:
        try:
            await self.store.set_state(chat.interaction_id, state, **kw)
        except CrmError as e:
            await self._event(chat, "state_failed", ok=False, state=state, error=str(e))

    def _token(self, iid: int) -> str:
        return hmac.new(self._secret, str(iid).encode(), hashlib.sha256).hexdigest()

    def _to_widgets(self, chat: Chat, msg: dict[str, Any]) -> None:
        for link in list(chat.links):
            link.put(msg)

    def _to_agent(self, chat: Chat, type_: str, **fields: Any) -> int:
        agent = self.directory.agents.get(chat.agent_id or "")
        if agent is None:
            return 0
        return self.hub.send(agent.user_id, type_, interaction_id=chat.interaction_id, **fields)

    @staticmethod
    def _view(m: StoredMessage, buttons: list[dict[str, str]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": m.seq, "sender": m.sender, "text": m.body, "html": render_html(m.body),
                               "at": _iso(m.at)}
        if m.author:
            out["author"] = m.author
        if m.client_id:
            out["client_id"] = m.client_id
        if buttons:
            out["buttons"] = buttons
        return out

    async def _store(self, chat: Chat, sender: str, text: str, *, author: str | None = None,
                     client_id: str | None = None,
                     buttons: list[dict[str, str]] | None = None) -> StoredMessage:
        """Store a message with the chat's next number, then send it to both sides."""
        if client_id is not None and client_id in chat.client_seq:
            stored = await self.log.by_client_id(chat.interaction_id, client_id)
            if stored is not None:  # a resend after a reconnect: the stored one is the answer
                return stored
        seq = chat.next_seq
        chat.next_seq += 1
        if client_id is not None:
            chat.client_seq[client_id] = seq
        try:
            m = await self.log.append(chat.interaction_id, seq, sender, text, author=author,
                                      client_id=client_id)
        except BaseException:
            if client_id is not None:
                chat.client_seq.pop(client_id, None)
            raise
        view = self._view(m, buttons)
        self._to_widgets(chat, _msg("message", **view))
        if chat.state in ("active", "ended") and chat.agent_id:
            self._to_agent(chat, "chat_message", **view)
        for watch in self.watchers:  # e.g. supervisors observing the chat (services/interventions.py)
            watch(chat, view)
        return m

    # ------------------------------------------------------------------ widget connections
    def open_widget(self, site: str, origin: str, remote: str) -> WidgetLink:
        if not self.options.origin_allowed(site, origin):
            raise MessageRefused("forbidden", "this site may not open chats here")
        link = WidgetLink(self, site, origin, remote)
        link.put(_msg("status", **self.status()))
        return link

    def agents_available(self) -> bool:
        """Open, and any agent who takes chats signed in (ready, busy or in wrap-up)?"""
        return self.is_open() and self._chat_capacity(enough=1) > 0

    def is_open(self) -> bool:
        """Within the business hours (`chat.hours`), on the injected clock."""
        if self.options.hours is None:
            return True
        from ivr.schedule import is_open

        tz, weekly = self.options.hours
        return is_open(weekly, self.ivr_clock().astimezone(tz))

    def _chat_capacity(self, enough: int | None = None) -> int:
        """Chat slots of the agents signed in (stops once `enough` is reached). A shared store
        (Redis) sums them in one script, one round trip per 2,000 agents (one blocking round trip
        per agent x every widget opened stalled the event loop)."""
        store = self.runner.engine.store
        ids = list(self.directory.agents)
        summed = getattr(store, "capacity", None)
        if summed is not None:
            return int(summed(Channel.CHAT, ids, enough))
        many = getattr(store, "agents", None)
        total, step = 0, (200 if many is not None else 1)
        for i in range(0, len(ids), step):
            chunk = ids[i:i + step]
            recs = many(chunk).values() if many is not None else [store.agent(chunk[0])]
            for rec in recs:
                if rec is None or rec.presence in (Presence.OFFLINE, Presence.NOT_READY):
                    continue
                total += (rec.profile.capacity or {}).get(Channel.CHAT, 0)
            if enough is not None and total >= enough:
                break
        return total

    async def widget_message(self, link: WidgetLink, msg: dict[str, Any]) -> dict[str, Any] | None:
        handler = self.widget_handlers.get(str(msg.get("type")))
        if handler is None:
            raise MessageRefused("unknown_type", "unknown message type")
        try:
            result: dict[str, Any] | None = await handler(link, msg)
            return result
        except ContentRefused as e:
            raise MessageRefused(e.code, str(e)) from None
        except NotFound as e:
            raise MessageRefused("not_found", str(e)) from None
        except CrmError as e:
            raise MessageRefused("invalid", str(e)) from None

    async def widget_closed(self, link: WidgetLink) -> None:
        chat = link.chat
        if chat is None:
            return
        chat.links.discard(link)
        if chat.links or chat.state in ("ended", "done"):
            return
        self._arm_gone(chat)

    def _arm_gone(self, chat: Chat) -> None:
        """The customer has `resume_s` to come back (to any process: shared.py)."""
        if chat.gone is not None:
            chat.gone.cancel()
        loop = asyncio.get_running_loop()
        chat.gone = loop.call_later(self.options.resume_s, lambda: self.spawn(self._customer_gone(chat)))

    async def _customer_gone(self, chat: Chat) -> None:
        chat.gone = None
        if chat.links or chat.state in ("ended", "done"):
            return
        await self._end(chat, "customer_left")

    def _need_chat(self, link: WidgetLink) -> Chat:
        if link.chat is None:
            raise MessageRefused("invalid", "start or resume a chat first")
        return link.chat

    # ------------------------------------------------------------------ widget: start and resume
    async def w_start(self, link: WidgetLink, msg: dict[str, Any]) -> dict[str, Any] | None:
        async with self._starting:
            return await self._start(link, msg)

    async def _start(self, link: WidgetLink, msg: dict[str, Any]) -> dict[str, Any] | None:
        if link.chat is not None:
            raise MessageRefused("conflict", "this connection already has a chat")
        if not self.ip_limits.take(link.remote):
            raise MessageRefused("rate_limited", "too many chats from your address; try again shortly")
        if not self.is_open():
            raise MessageRefused("closed", "we are closed now; please leave us a message")
        site = self.options.sites[link.site]
        name = " ".join(str(msg.get("name") or "").split())[:200]
        email, phone = msg.get("email") or None, msg.get("phone") or None
        ident = msg.get("identity")
        customer = None
        verified = False
        if ident is not None:
            uid, sig = ident.get("user_id"), ident.get("signature")
            if not identity.verify(site.secret, uid, sig):
                raise MessageRefused("bad_identity", "the signed identity is not valid; it is not trusted")
            verified = True
            chat_key = f"{site.id}:{uid}"
            customer = await self.store.identify(chat_id=chat_key)
            if customer is None:
                customer = await self._form_customer(name or f"Website user {uid}", email, phone)
                await self.store.add_contact_point(customer.id, "chat", chat_key)
        else:
            if not name or not email:
                raise MessageRefused("invalid", "your name and email are needed to start a chat")
            customer = await self._form_customer(name, email, phone)
        interaction = await self.store.open_interaction(
            "chat", "inbound", customer.id, external_id=f"chat:{site.id}",
            from_address=str(email or customer.name)[:320], to_address=link.origin[:320])
        chat = Chat(interaction.id, site.id, customer.id, customer.name, tier=customer.tier,
                    verified=verified, email=str(email).strip().lower() if email else None)
        chat.token = self._token(chat.interaction_id)
        self.chats[chat.interaction_id] = chat
        chat.links.add(link)
        link.chat = chat
        await self._event(chat, "arrive", site=site.id, origin=link.origin, verified=verified,
                          customer_id=customer.id)
        self._mirror(chat)
        link.put(_msg("welcome", chat_id=chat.interaction_id, token=chat.token, name=chat.name,
                      state="new", last_seq=0, resumed=False))
        if self.bot is not None:
            await self._run_bot(chat, None)
        else:
            await self._queue(chat, self.options.queue, {}, 0.0)
        self._ensure_refresher()
        return None

    async def _form_customer(self, name: str, email: Any, phone: Any) -> Any:
        for key, value in (("email", email), ("phone", phone)):
            if value:
                c = await self.store.identify(**{key: str(value)})
                if c is not None:
                    return c
        return await self.store.create_customer(name or "Website visitor",
                                                emails=[str(email)] if email else [],
                                                phones=[str(phone)] if phone else [])

    async def w_resume(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        if link.chat is not None:
            raise MessageRefused("conflict", "this connection already has a chat")
        iid, token = msg.get("chat_id"), str(msg.get("token") or "")
        chat = self.chats.get(iid) if isinstance(iid, int) else None
        if chat is None and self.shared is not None and isinstance(iid, int) \
                and hmac.compare_digest(self._token(iid), token):
            chat = await self.shared.adopt(iid, link.site)  # its process died, or the balancer moved it
        if chat is None or not hmac.compare_digest(chat.token, token) or chat.site != link.site:
            raise MessageRefused("not_found", "that chat is over or unknown; start a new one")
        if chat.gone is not None:
            chat.gone.cancel()
            chat.gone = None
        after = int(msg.get("last_seq") or 0)
        link.chat = chat
        link.last_seq = after
        link.hold = []
        chat.links.add(link)
        try:
            link.put(_msg("welcome", chat_id=chat.interaction_id, token=chat.token, name=chat.name,
                          state=chat.state, last_seq=chat.next_seq - 1, resumed=True))
            missed = await self.log.since(chat.interaction_id, after, REPLAY_LIMIT)
            hold, link.hold = link.hold, None
            for m in missed:
                link.put(_msg("message", **self._view(m)))
            link.hold = hold
        finally:
            link.release()
        self._resume_state(chat, link)
        await self._event(chat, "resume", side="customer", after_seq=after)

    def _resume_state(self, chat: Chat, link: WidgetLink) -> None:
        agent = self.directory.agents.get(chat.agent_id or "")
        if chat.state == "active" and agent is not None:
            link.put(_msg("agent", name=agent.display_name))
        elif chat.state in ("queued", "offered"):
            chat.last_queue_msg = None
            self.spawn(self._refresh_positions())
        elif chat.state in ("ended", "done"):
            link.put(_msg("ended", by=chat.ended_by or "agent"))
        r = chat.receipts["agent"]
        for status in ("delivered", "read"):
            if r[status]:
                link.put(_msg("receipt", seq=r[status], status=status))

    # ------------------------------------------------------------------ widget: conversation
    async def w_send(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        chat = self._need_chat(link)
        if chat.state in ("ended", "done"):
            raise MessageRefused("conflict", "the chat has ended")
        client_id = str(msg.get("client_id") or "")
        if client_id in chat.client_seq:  # a resend: answer with the stored copy, store nothing
            stored = await self.log.by_client_id(chat.interaction_id, client_id)
            if stored is not None:
                link.put(_msg("message", **self._view(stored)), ack=True)
                return
        if not link.bucket.take() or not self.ip_limits.take(link.remote):
            raise MessageRefused("rate_limited", "you are sending messages too fast")
        text = check_text(msg.get("text"), self.options.max_message_chars)
        await self._store(chat, "customer", text, client_id=client_id)
        if chat.state == "bot" and self.bot is not None:
            await self._run_bot(chat, text)

    async def w_typing(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        chat = self._need_chat(link)
        if chat.state == "active":
            self._to_agent(chat, "chat_peer_typing", on=bool(msg.get("on")))

    async def w_seen(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        chat = self._need_chat(link)
        self._receipt(chat, "customer", int(msg.get("seq") or 0), str(msg.get("status")))

    def _receipt(self, chat: Chat, side: str, seq: int, status: str) -> None:
        """`side` has delivered/read the other side's messages up to `seq`; tell the other side."""
        if status not in ("delivered", "read") or seq < 1 or seq >= chat.next_seq:
            raise MessageRefused("invalid", "no such message")
        marks = chat.receipts[side]
        statuses = ("delivered", "read") if status == "read" else ("delivered",)
        for s in statuses:
            if seq <= marks[s]:
                continue
            marks[s] = seq
            if side == "customer":
                self._to_agent(chat, "chat_receipt", seq=seq, status=s)
            else:
                self._to_widgets(chat, _msg("receipt", seq=seq, status=s))

    async def w_end(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        chat = self._need_chat(link)
        if chat.state in ("ended", "done"):
            return
        await self._end(chat, "customer")

    async def w_survey(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        chat = self._need_chat(link)
        if chat.state not in ("ended", "done"):
            raise MessageRefused("conflict", "the survey comes after the chat")
        if chat.surveyed:
            raise MessageRefused("conflict", "thank you, your answer is already saved")
        score = msg.get("score")
        comment = msg.get("comment")
        await self.store.record_survey(int(score) if isinstance(score, int) else 0,
                                       interaction_id=chat.interaction_id,
                                       comment=comment if isinstance(comment, str) and comment else None)
        chat.surveyed = True
        self._mirror(chat)
        link.put(_msg("survey_saved", score=score))
        self._forget_if_done(chat)

    async def w_transcript(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        """After the chat: the transcript by email, once, to the chat's own address only (never
        to an address typed now: the widget is no way to send mail to strangers)."""
        from callcenter.channels.chat.transcript import transcript_text

        chat = self._need_chat(link)
        if chat.state not in ("ended", "done"):
            raise MessageRefused("conflict", "the transcript comes after the chat")
        if chat.transcript_sent:
            raise MessageRefused("conflict", "the transcript is already on its way")
        if self.mailer is None or not chat.email:
            raise MessageRefused("unavailable", "the transcript cannot be emailed here")
        chat.transcript_sent = True
        body = transcript_text(await self.log.since(chat.interaction_id, 0, REPLAY_LIMIT), chat.name)
        try:
            await self.mailer(chat.email, "Your chat transcript", body)
        except Exception as e:  # noqa: BLE001 - the customer hears why; the timeline keeps it
            chat.transcript_sent = False
            await self._event(chat, "transcript", ok=False, to=chat.email, error=str(e)[:300])
            raise MessageRefused("unavailable", "the transcript could not be sent; try again later") from None
        await self._event(chat, "transcript", to=chat.email)
        link.put(_msg("transcript_sent", to=chat.email))

    async def w_leave_message(self, link: WidgetLink, msg: dict[str, Any]) -> None:
        """No agent (or after hours): the message becomes an email-channel contact and a ticket."""
        if not self.ip_limits.take(link.remote):
            raise MessageRefused("rate_limited", "too many messages from your address; try again shortly")
        text = check_text(msg.get("text"), self.options.max_message_chars)
        name = " ".join(str(msg.get("name") or "").split())[:200]
        email = msg.get("email")
        if not name or not email:
            raise MessageRefused("invalid", "your name and email are needed so that we can answer")
        customer = await self._form_customer(name, email, msg.get("phone") or None)
        i = await self.store.open_interaction("email", "inbound", customer.id, from_address=str(email),
                                              to_address=link.origin[:320], external_id=f"chat:{link.site}")
        await self.store.append_event(i.id, "left_message", data={"site": link.site, "text": text,
                                                                   "via": "chat_widget"})
        ticket = await self.store.create_ticket(customer.id, "inquiry", "Message left in the website chat",
                                                description=text, interaction_ids=[i.id])
        link.put(_msg("left_message", ticket=ticket.number))

    # ------------------------------------------------------------------ bot
    async def _run_bot(self, chat: Chat, text: str | None) -> None:
        from ivr import LookupFailed, LookupResult

        chat.state = "bot"
        bot = self.bot
        now = self.ivr_clock()
        if text is None:
            turn = bot.start({"chat_id": chat.contact_id, "caller_id": "",
                              "customer_id": str(chat.customer_id or "")}, now)
            await self._state(chat, "ivr")
        else:
            turn = bot.receive(chat.bot, text, now)
        while True:
            for m in turn.messages:
                buttons = [{"label": b.label, "value": b.value} for b in m.buttons]
                await self._store(chat, "bot", m.text, buttons=buttons or None)
            if turn.lookup is None:
                break
            fn = self.lookups.get(turn.lookup.function)
            try:
                if fn is None:
                    raise LookupError(turn.lookup.function)
                value = await asyncio.wait_for(fn(**dict(turn.lookup.args)), 3.0)
                turn = bot.lookup_done(turn.state, LookupResult(value))
            except TimeoutError:
                turn = bot.lookup_done(turn.state, LookupFailed("timeout", timed_out=True))
            except Exception as e:  # noqa: BLE001 - a failed lookup is the flow's business
                turn = bot.lookup_done(turn.state, LookupFailed(str(e)[:200]))
        chat.bot = turn.state
        if turn.finished is None:
            return
        result = turn.finished.result
        await self._event(chat, "ivr", result=result.describe(), channel="chat")
        if result.kind == "queue":
            queue = result.queue or self.options.queue
            await self._queue(chat, queue, dict(result.skills), float(result.priority_boost))
        else:
            await self._store(chat, "system", "No agent can take this chat now. "
                              "You can leave us a message instead.")
            await self._end(chat, "bot")

    # ------------------------------------------------------------------ routing
    async def _queue(self, chat: Chat, queue: str, skills: dict[str, int], boost: float) -> None:
        if queue not in self.runner.engine.config.queues:
            await self._event(chat, "unknown_queue", ok=False, queue=queue)
            queue = self.options.queue
        chat.queue, chat.state = queue, "queued"
        await self.store.set_state(chat.interaction_id, "queued", queue=queue,
                                   events=(("queue", {"queue": queue, "skills": skills,
                                                      "priority": boost}),))
        chat.routed = True
        self._mirror(chat)
        contact = Contact(chat.contact_id, Channel.CHAT, queue, self.mono(),
                          customer_id=str(chat.customer_id or ""), tier=Tier(chat.tier), skills=skills,
                          priority=boost)
        await self.runner.handle(ContactArrived(contact))
        await self._refresh_positions()

    async def perform(self, decisions: list[Decision]) -> set[str]:
        """The engine's decisions about chats (others are ignored); returns the agents touched.
        Runs under the routing runner's lock: anything that feeds the engine again is spawned."""
        touched: set[str] = set()
        mine = False
        for d in decisions:
            cid = getattr(d, "contact_id", None)
            chat = self.chats.get(int(cid)) if isinstance(cid, str) and cid.isdigit() else None
            if chat is None:
                continue
            mine = True
            if isinstance(d, RoutingOffer):
                await self._offer(chat, d)
            elif isinstance(d, Requeue):
                await self._requeued(chat, d.agent_id, d.reason)
            elif isinstance(d, Ended):
                chat.routed = False
                if d.outcome is not ContactStatus.HANDLED and chat.state in ("queued", "offered"):
                    self.spawn(self._end(chat, d.outcome.value))
            else:
                await self._event(chat, type(d).__name__.lower(),
                                  **{k: v for k, v in _fields(d).items() if k != "contact_id"})
            agent = getattr(d, "agent_id", None)
            if agent:
                touched.add(agent)
        if mine or self._waiting_chats():
            self.spawn(self._refresh_positions())
        return touched

    async def _offer(self, chat: Chat, d: RoutingOffer) -> None:
        agent = self.directory.agents.get(d.agent_id)
        if agent is None:
            return
        chat.offer_id = secrets.token_urlsafe(9)
        chat.agent_id, chat.state = d.agent_id, "offered"
        chat.reasons = [{"name": p.name, "value": p.value, "note": p.note} for p in d.reasons]
        expires = datetime.now(UTC) + timedelta(seconds=self.options.accept_timeout_s)
        chat.offer_expires = expires.isoformat()
        if not chat.transferred:
            await self._state(chat, "offered", agent_id=agent.user_id)
        await self._event(chat, "offer", agent=agent.username, reasons=chat.reasons)
        self._mirror(chat)
        delivered = self.hub.send(agent.user_id, "chat_offer", **await self.offer_message(chat))
        offer_id = chat.offer_id
        if not delivered:
            self.spawn(self._decline(chat, offer_id, no_answer=False, why="agent_disconnected"))
            return
        self.spawn(self._accept_timeout(chat, offer_id))

    async def offer_message(self, chat: Chat) -> dict[str, Any]:
        card = await self._card(chat)
        return {"offer_id": chat.offer_id, "interaction_id": chat.interaction_id, "queue": chat.queue,
                "customer_name": chat.name, "verified": chat.verified,
                "pop": {"known": card is not None, "card": card}, "reasons": chat.reasons,
                "expires_at": chat.offer_expires}

    async def _card(self, chat: Chat) -> dict[str, Any] | None:
        if chat.customer_id is None:
            return None
        try:
            return (await self.store.customer_card(chat.customer_id)).to_dict()
        except CrmError as e:
            await self._event(chat, "pop_failed", ok=False, error=str(e))
            return None

    async def _accept_timeout(self, chat: Chat, offer_id: str) -> None:
        await asyncio.sleep(self.options.accept_timeout_s)
        if chat.offer_id == offer_id and chat.state == "offered":
            await self._decline(chat, offer_id, no_answer=True, why="no_answer")

    async def _decline(self, chat: Chat, offer_id: str, *, no_answer: bool, why: str) -> None:
        if chat.offer_id != offer_id or chat.state != "offered" or chat.agent_id is None:
            return
        aid = chat.agent_id
        chat.offer_id = None
        self._mirror(chat)
        self._to_agent(chat, "chat_withdrawn", offer_id=offer_id, reason=why)
        await self._event(chat, "requeue", ok=False, reason=why)
        try:
            await self.runner.handle(OfferDeclined(chat.contact_id, aid, no_answer=no_answer))
        except RoutingError as e:
            await self._event(chat, "routing_refused", ok=False, error=str(e))
        self.directory.push_state(aid)

    async def _requeued(self, chat: Chat, agent_id: str, reason: str) -> None:
        if chat.state == "offered":
            chat.state, chat.offer_id, chat.agent_id = "queued", None, None
            self._mirror(chat)
            if not chat.transferred:
                await self._state(chat, "queued")

    def _waiting_chats(self) -> list[Chat]:
        return [c for c in self.chats.values() if c.state in ("queued", "offered") and c.links]

    async def _eta_capacity(self) -> int:
        """The capacity behind the wait estimates: with many agents, read at most once a second
        (every chat queued refreshes every waiting chat's position); off the event loop on a
        shared store."""
        many = len(self.directory.agents) >= 100
        at, cap = getattr(self, "_eta_cap", (-1e9, 0))
        if many and time.monotonic() - at < 1.0:
            return int(cap)
        store = self.runner.engine.store
        summed = getattr(store, "acapacity", None)
        if summed is not None:
            cap = int(await summed(Channel.CHAT, list(self.directory.agents)))
        else:
            cap = self._chat_capacity()
        if many:
            self._eta_cap = (time.monotonic(), cap)
        return int(cap)

    async def _waiting_order(self) -> list[tuple[str, str]]:
        """(contact, queue) of every waiting contact, best first. A shared store answers in one
        round trip off the event loop (it was one blocking read per waiting contact)."""
        engine = self.runner.engine
        batch = getattr(engine.store, "awaiting_queues", None)
        if batch is not None:
            return [(cid, queue) for cid, _key, queue in await batch(100_000)]
        order = []
        for cid, _key in engine.waiting(limit=100_000):
            rec = engine.store.contact(cid)
            if rec is not None:
                order.append((cid, rec.queue))
        return order

    async def _refresh_positions(self) -> None:
        """Send each waiting chat's position and estimated wait when they changed. One refresh at
        a time: asked for meanwhile (every routing step asks), it runs once more afterwards, on a
        shared store no sooner than REFRESH_GAP_S later."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            while True:
                self._refresh_again = False
                await self._refresh_once()
                if not self._refresh_again:
                    return
                if hasattr(self.runner.engine.store, "awaiting_queues"):
                    await asyncio.sleep(REFRESH_GAP_S)
        finally:
            self._refreshing = False

    async def _refresh_once(self) -> None:
        if not self._waiting_chats():
            return
        order = await self._waiting_order()
        pos = waiting.positions(order)
        capacity = await self._eta_capacity()
        chats = self._waiting_chats()
        for chat in chats:
            p = 0 if chat.state == "offered" else pos.get(chat.contact_id, 0)
            eta = waiting.estimated_wait_s(p, capacity, self.options.handle_s)
            if chat.last_queue_msg == (p, eta):
                continue
            chat.last_queue_msg = (p, eta)
            self._to_widgets(chat, _msg("queue", position=p, estimated_wait_s=eta,
                                        agents_available=capacity > 0))

    def _ensure_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.refresh_s)
            try:
                await self._refresh_positions()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("chat queue refresh failed")

    async def _end(self, chat: Chat, by: str) -> None:
        """The chat ends: abandoned while waiting, or handled (the agent wraps up)."""
        was = chat.state
        if was in ("ended", "done"):
            return
        chat.state, chat.ended_by = "ended", by
        aid = chat.agent_id
        self._mirror(chat)
        if chat.routed:
            try:
                if was == "active" and aid:
                    await self.runner.handle(ContactFinished(chat.contact_id, aid, wrap_up_s=0.0))
                else:
                    await self.runner.handle(ContactHungUp(chat.contact_id))
            except RoutingError as e:
                await self._event(chat, "routing_refused", ok=False, error=str(e))
            chat.routed = False
        text = {"customer": "The customer left the chat.", "agent": "The agent ended the chat.",
                "customer_left": "The customer left the chat (disconnected)."}.get(by, "The chat ended.")
        try:
            await self._store(chat, "system", text)
        except CrmError:
            log.exception("chat %s: could not store the end message", chat.interaction_id)
        self._to_widgets(chat, _msg("ended", by=by))
        await self.store.update_interaction(chat.interaction_id,
                                            transcript_ref=f"chat_messages:{chat.interaction_id}")
        if was == "active" and aid:
            await self._state(chat, "ended")
            await self._event(chat, "end", by=by)
            self._to_agent(chat, "chat_ended", by=by)
            self.directory.push_state(aid)
        else:
            if was == "offered" and aid:
                self._to_agent(chat, "chat_withdrawn", offer_id=chat.offer_id or "", reason="customer_left")
            await self._state(chat, "abandoned")
            await self._event(chat, "end", ok=False, by=by, detail=f"left while {was}")
            chat.wrapped_up = True
            chat.agent_id = None
            self._mirror(chat)
        self._forget_if_done(chat)

    def _forget_if_done(self, chat: Chat) -> None:
        """A chat stays in memory until the agent wrapped up and the customer is gone or surveyed."""
        if chat.state != "ended" or not chat.wrapped_up:
            return
        if chat.links and not chat.surveyed:
            return
        chat.state = "done"
        self._mirror(chat)
        loop = asyncio.get_running_loop()
        # kept a little longer so that a customer reloading the page still sees the transcript
        loop.call_later(self.options.resume_s, lambda: self._drop(chat))

    def _drop(self, chat: Chat) -> None:
        if self.chats.get(chat.interaction_id) is chat:
            del self.chats[chat.interaction_id]
            if self.shared is not None:
                self.shared.forget(chat.interaction_id)

    def status(self) -> dict[str, Any]:
        return {"agents_available": self.agents_available(), "open": self.is_open(),
                "max_message_chars": self.options.max_message_chars}


def options_from_settings(chat: Any) -> ChatOptions:
    """ChatOptions from the `chat` settings section."""
    sites = {s.id: Site(s.id, frozenset(o.rstrip("/") for o in s.origins), s.resolved_secret())
             for s in chat.sites}
    hours = None
    if chat.hours:
        from ivr.schedule import parse_weekly, zone

        tz = zone(str(chat.hours.get("timezone") or "UTC"))
        weekly, errors = parse_weekly(chat.hours.get("weekly") or {})
        if tz is None or weekly is None or errors:
            raise ValueError(f"chat.hours: {errors or 'unknown timezone'}")
        hours = (tz, weekly)
    return ChatOptions(hours=hours, sites=sites, queue=chat.queue, max_message_chars=chat.max_message_chars,
                       rate_per_session=chat.rate_per_session, burst_per_session=chat.burst_per_session,
                       rate_per_ip=chat.rate_per_ip, burst_per_ip=chat.burst_per_ip,
                       resume_s=chat.resume_s, handle_s=chat.handle_s, canned=tuple(chat.canned))


def _fields(d: Any) -> dict[str, Any]:
    out = {}
    for name in getattr(d, "__slots__", ()):
        v = getattr(d, name)
        out[name] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
    return out
