"""The agent's side of web chats: what a console may do with its chats, and how a reconnecting
console gets them back. Mixed into ChatService (service.py), whose state and helpers it uses."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.channels.chat.content import ContentRefused, check_text
from callcenter.channels.chat.state import REPLAY_LIMIT, Chat
from callcenter.channels.chat.state import msg as _msg
from callcenter.facade import MessageRefused, WebUser
from callcenter.services.consoles import Link
from crm_core.errors import CrmError, NotFound
from routing import Channel, Contact, ContactArrived, ContactFinished, OfferAccepted, Tier


class AgentSide:
    """Console handlers of ChatService (the attributes below are ChatService's)."""

    store: Any
    runner: Any
    directory: Any
    hub: Any
    options: Any
    log: Any
    mono: Callable[[], float]
    chats: dict[int, Chat]
    _store: Any
    _event: Any
    _state: Any
    _card: Any
    _view: Any
    _decline: Any
    _end: Any
    _to_widgets: Any
    offer_message: Any
    shared: Any = None  # shared.py: the chats' snapshots, when several processes form the center

    def _mirror(self, chat: Chat) -> None:
        """After a transition: the chat's snapshot for the other processes (in order, async)."""
        if self.shared is not None:
            self.shared.save(chat)

    # ------------------------------------------------------------------ agent side
    def _own(self, user: WebUser, iid: Any, states: tuple[str, ...] = ("active",)) -> Chat:
        chat = self.chats.get(iid) if isinstance(iid, int) else None
        agent = self.directory.by_user(user.id)
        if chat is None or agent is None:
            raise MessageRefused("not_found", "no such chat")
        if chat.agent_id != agent.agent_id:
            raise MessageRefused("forbidden", "that chat is handled by another agent")
        if chat.state not in states:
            raise MessageRefused("conflict", f"the chat is {chat.state}")
        return chat

    async def c_accept(self, user: WebUser, msg: dict[str, Any]) -> None:
        offer_id = str(msg.get("offer_id"))
        chat = next((c for c in self.chats.values() if c.offer_id == offer_id), None)
        agent = self.directory.by_user(user.id)
        if chat is None or agent is None or chat.agent_id != agent.agent_id or chat.state != "offered":
            raise MessageRefused("not_found", "no such pending chat offer")
        chat.offer_id = None
        await self.runner.handle(OfferAccepted(chat.contact_id, agent.agent_id))
        chat.state = "active"
        self._mirror(chat)
        if not chat.transferred:
            await self._state(chat, "answered", agent_id=agent.user_id)
        await self._event(chat, "answer", agent=agent.username)
        self._to_widgets(chat, _msg("agent", name=agent.display_name))
        await self._send_started(chat, agent.user_id)
        self.directory.push_state(agent.agent_id)

    async def c_decline(self, user: WebUser, msg: dict[str, Any]) -> None:
        offer_id = str(msg.get("offer_id"))
        chat = next((c for c in self.chats.values() if c.offer_id == offer_id), None)
        agent = self.directory.by_user(user.id)
        if chat is None or agent is None or chat.agent_id != agent.agent_id:
            raise MessageRefused("not_found", "no such pending chat offer")
        await self._decline(chat, offer_id, no_answer=False, why="declined")

    async def _send_started(self, chat: Chat, user_id: int, link: Link | None = None) -> None:
        messages = [self._view(m) for m in await self.log.since(chat.interaction_id, 0, REPLAY_LIMIT)]
        fields = {"interaction_id": chat.interaction_id, "customer_name": chat.name,
                  "verified": chat.verified, "card": await self._card(chat),
                  "state": "ended" if chat.state in ("ended", "done") else "active",
                  "messages": messages, "receipts": chat.receipts["customer"],
                  "canned": list(self.options.canned)}
        if link is not None:
            link.put(_msg("chat_started", **fields))
        else:
            self.hub.send(user_id, "chat_started", **fields)

    async def c_send(self, user: WebUser, msg: dict[str, Any]) -> None:
        chat = self._own(user, msg.get("interaction_id"))
        text = check_text(msg.get("text"), self.options.max_message_chars)
        await self._store(chat, "agent", text, author=user.display_name, client_id=str(msg.get("client_id")))

    async def c_typing(self, user: WebUser, msg: dict[str, Any]) -> None:
        chat = self._own(user, msg.get("interaction_id"))
        self._to_widgets(chat, _msg("agent_typing", on=bool(msg.get("on"))))

    async def c_seen(self, user: WebUser, msg: dict[str, Any]) -> None:
        chat = self._own(user, msg.get("interaction_id"), ("active", "ended"))
        self._receipt(chat, "agent", int(msg.get("seq") or 0), str(msg.get("status")))

    async def c_end(self, user: WebUser, msg: dict[str, Any]) -> None:
        chat = self._own(user, msg.get("interaction_id"))
        await self._end(chat, "agent")

    async def c_transfer(self, user: WebUser, msg: dict[str, Any]) -> None:
        chat = self._own(user, msg.get("interaction_id"))
        notes = msg.get("notes")
        await self._transfer(chat, user, str(msg.get("target_type")), str(msg.get("target") or ""),
                             notes if isinstance(notes, str) else None)

    async def _transfer(self, chat: Chat, user: WebUser, kind: str, target: str, notes: str | None,
                        *, check_user: Callable[[Any], None] | None = None) -> None:
        """Route the chat again: to a queue, or to an agent (as the preferred agent). The
        transferring agent's tab closes (`wrapup_saved`, disposition `transferred`)."""
        queue, preferred = chat.queue, None
        if kind == "queue":
            if target not in self.runner.engine.config.queues:
                raise MessageRefused("not_found", f"no queue {target!r}")
            queue = target
        else:
            try:
                u = await self.store.get_user(target)
            except NotFound:
                raise MessageRefused("not_found", f"no agent {target!r}") from None
            if check_user is not None:
                check_user(u)
            if str(u.id) not in self.directory.agents or u.id == user.id:
                raise MessageRefused("invalid", f"{target} does not take chats")
            preferred = str(u.id)
        aid = chat.agent_id or ""
        await self.runner.handle(ContactFinished(chat.contact_id, aid, wrap_up_s=0.0))
        await self._event(chat, "transfer", by=user.username, target_type=kind, target=target, notes=notes)
        self.hub.send(user.id, "wrapup_saved", interaction_id=chat.interaction_id, disposition="transferred",
                      ticket=None)
        await self._store(chat, "system", "You are being transferred to another agent.")
        chat.transferred, chat.state, chat.agent_id, chat.queue = True, "queued", None, queue
        self._mirror(chat)
        contact = Contact(chat.contact_id, Channel.CHAT, queue, self.mono(),
                          customer_id=str(chat.customer_id or ""), tier=Tier(chat.tier),
                          preferred_agent=preferred, sticky_s=60.0 if preferred else None)
        await self.runner.handle(ContactArrived(contact))
        self.directory.push_state(aid)

    async def c_escalate(self, user: WebUser, msg: dict[str, Any]) -> None:
        """Escalate the chat, as for a call: routed again to a specialist queue or to a
        supervisor who takes chats, with the reason; the chat's ticket (or the customer's
        newest open one) gets the escalation queue."""
        chat = self._own(user, msg.get("interaction_id"))
        reason = str(msg.get("reason") or "").strip()
        queue, supervisor = msg.get("queue"), msg.get("supervisor")
        if not reason:
            raise MessageRefused("invalid", "say why the chat is escalated")
        if (queue is None) == (supervisor is None):
            raise MessageRefused("invalid", "escalate to a queue or to a supervisor")

        def must_supervise(u: Any) -> None:
            if "supervisor" not in set(u.roles):
                raise MessageRefused("invalid", f"{u.username} is not a supervisor")

        if supervisor is not None:
            await self._transfer(chat, user, "agent", str(supervisor), reason, check_user=must_supervise)
            target = f"supervisor:{supervisor}"
        else:
            await self._transfer(chat, user, "queue", str(queue), reason)
            target = str(queue)
        ticket = await self._escalate_ticket(chat, target)
        await self._event(chat, "escalate", target=target, reason=reason, ticket=ticket, by=user.username)

    async def _escalate_ticket(self, chat: Chat, queue: str) -> str | None:
        try:
            ticket = await self.store.escalate_ticket_of(chat.interaction_id, chat.customer_id, queue)
            return None if ticket is None else str(ticket.number)
        except CrmError as e:
            await self._event(chat, "escalate_ticket_failed", ok=False, error=str(e))
            return None

    async def c_wrapup(self, user: WebUser, msg: dict[str, Any]) -> None:
        chat = self._own(user, msg.get("interaction_id"), ("ended",))
        if chat.wrapped_up:
            raise MessageRefused("conflict", "the wrap-up is already saved")
        code, notes = msg.get("disposition"), msg.get("notes")
        if not code or not isinstance(notes, str) or not notes.strip():
            raise MessageRefused("invalid", "a disposition and notes are required")
        await self.store.set_disposition(chat.interaction_id, str(code), notes, agent_id=user.id)
        ticket = None
        spec = msg.get("ticket")
        if isinstance(spec, dict) and spec.get("number"):
            ticket = await self.store.get_ticket(str(spec["number"]))
            await self.store.link_interaction(ticket.id, chat.interaction_id)
            if spec.get("status"):
                ticket = await self.store.update_ticket_status(ticket.id, str(spec["status"]))
        elif isinstance(spec, dict) and chat.customer_id is not None:
            ticket = await self.store.create_ticket(
                chat.customer_id, str(spec.get("type")), str(spec.get("subject") or ""),
                description=spec.get("description"), interaction_ids=[chat.interaction_id])
        await self.store.set_state(chat.interaction_id, "wrapup_done", agent_id=user.id)
        await self.store.append_event(chat.interaction_id, "wrapup", data={
            "disposition": code, "ticket": ticket.number if ticket else None, "agent": user.username})
        chat.wrapped_up = True
        self._mirror(chat)
        tview = {"number": ticket.number, "type": ticket.type, "status": ticket.status} if ticket else None
        self.hub.send(user.id, "wrapup_saved", interaction_id=chat.interaction_id, disposition=code,
                      ticket=tview)
        self._forget_if_done(chat)

    # ------------------------------------------------------------------ console (re)connect
    async def console_connected(self, user: WebUser, link: Link) -> None:
        agent = self.directory.by_user(user.id)
        if agent is None:
            return
        link.put(_msg("chat_hello", canned=list(self.options.canned)))
        for chat in list(self.chats.values()):
            if chat.agent_id != agent.agent_id:
                continue
            if chat.state == "offered" and chat.offer_id:
                link.put(_msg("chat_offer", **await self.offer_message(chat)))
            elif chat.state == "active" or (chat.state == "ended" and not chat.wrapped_up):
                await self._send_started(chat, user.id, link)

    def console_handlers(self) -> dict[str, Callable[[WebUser, dict[str, Any]], Awaitable[Any]]]:
        """The console messages this service handles (ConsoleService dispatches them)."""
        def refusing(fn: Callable[[WebUser, dict[str, Any]], Awaitable[Any]]) -> Any:
            async def handler(user: WebUser, msg: dict[str, Any]) -> Any:
                try:
                    return await fn(user, msg)
                except ContentRefused as e:
                    raise MessageRefused(e.code, str(e)) from None
            return handler

        return {name: refusing(fn) for name, fn in (
            ("chat_accept", self.c_accept), ("chat_decline", self.c_decline), ("chat_send", self.c_send),
            ("chat_typing", self.c_typing), ("chat_seen", self.c_seen), ("chat_end", self.c_end),
            ("chat_wrapup", self.c_wrapup), ("chat_transfer", self.c_transfer),
            ("chat_escalate", self.c_escalate))}

