"""What an agent console may ask, and what it is told when it (re)connects."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.facade import MessageRefused, WebUser
from callcenter.services.agents import REASON_CODES, AgentDirectory
from callcenter.services.consoles import ConsoleHub, Link
from callcenter.services.routing_runner import RoutingRunner
from callcenter.services.voice import VoiceService
from crm_core.errors import CrmError, NotFound
from crm_core.store import CrmStore
from routing import AgentPresence, Presence, RoutingError, SlotState, WrapUpEnded

log = logging.getLogger(__name__)

Handler = Callable[[WebUser, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class ConsoleService:
    def __init__(self, store: CrmStore, hub: ConsoleHub, directory: AgentDirectory,
                 runner: RoutingRunner, voice: VoiceService, *, reconnect_grace_s: float = 3.0) -> None:
        self.store, self.hub, self.directory, self.runner, self.voice = store, hub, directory, runner, voice
        self.reconnect_grace_s = reconnect_grace_s
        self.reason_codes: list[tuple[str, str]] = list(REASON_CODES)  # admins change them (issue 14)
        self._grace: set[asyncio.Task[None]] = set()
        self.handlers: dict[str, Handler] = {
            "set_state": self.set_state, "ack_offer": self.ack_offer, "decline_offer": self.decline_offer,
            "answer": self.answer, "hangup": self.hangup, "submit_wrapup": self.submit_wrapup,
            "search": self.search, "create_customer": self.create_customer,
            "link_number": self.link_number, "update_customer": self.update_customer,
            "hold": self.hold, "retrieve": self.retrieve, "transfer": self.transfer,
            "recording": self.recording,
            "consult": self.consult, "consult_complete": self.consult_complete,
            "consult_cancel": self.consult_cancel, "dial": self.dial,
            "consult_conference": self.consult_conference, "conference_leave": self.conference_leave,
            "escalate": self.escalate,
        }
        hub.on_last_disconnect.append(self.console_closed)

    # ------------------------------------------------------------------ connect and resume
    async def connect(self, user: WebUser) -> Link:
        link = self.hub.connect(user.id)
        agent = self.directory.by_user(user.id)
        dispositions = [{"code": d.code, "label": d.label}
                        for d in await self.store.list_disposition_codes(active_only=True)]
        hello = {"user": {"id": user.id, "username": user.username, "display_name": user.display_name,
                          "extension": user.extension},
                 "reason_codes": [{"code": c, "label": lbl} for c, lbl in self.reason_codes],
                 "dispositions": dispositions, "wrapup_required": {"disposition": True, "notes": True}}
        self._to(link, "hello", **hello)
        if agent is None:
            return link
        self._to(link, "agent_state", **self.directory.status(agent.agent_id))
        call = self.voice.current_for(agent.agent_id)
        if call is not None:
            if call.offer is not None and not call.offer.settled and call.state in ("offered", "ringing"):
                self._to(link, "offer", **(call.offer.message or await self.voice.offer_message(call)))
            if call.state in ("ringing", "talking", "held"):
                self._to(link, "contact_state", interaction_id=call.interaction_id, state=call.state,
                         at=call.state_at)
                cons = call.consult
                if cons is not None and cons.get("state") in ("dialing", "talking"):
                    self._to(link, "consult_state", interaction_id=call.interaction_id,
                             state=cons["state"], target=str(cons.get("target") or ""), at=call.state_at)
                conf = self.voice.conference.resume(call)  # a three-way conference under way
                if conf is not None:
                    self._to(link, "conference_state", **conf)
                if call.recording is not None and call.state != "ringing":
                    self._to(link, "recording_state", interaction_id=call.interaction_id,
                             state=call.recording, at=call.state_at)
            if call.state == "wrapup":
                self._to(link, "contact_state", interaction_id=call.interaction_id, state="ended",
                         at=call.state_at)
                self._to(link, "wrapup", interaction_id=call.interaction_id,
                         required={"disposition": True, "notes": True}, until=call.wrapup_until)
        return link

    async def close(self) -> None:
        for task in list(self._grace):
            task.cancel()
        await asyncio.gather(*self._grace, return_exceptions=True)

    @staticmethod
    def _to(link: Link, type_: str, **fields: Any) -> None:
        from callcenter.facade import PROTOCOL_VERSION

        link.put({"type": type_, "v": PROTOCOL_VERSION, **fields})

    async def console_closed(self, user_id: int) -> None:
        """The agent's last console went away. After a short grace (a reload, a network blip:
        the console reconnects and resumes), an unanswered offer goes back to the queue and an
        idle ready agent is made not-ready, so that no call waits on a closed browser."""
        agent = self.directory.by_user(user_id)
        if agent is None:
            return
        task = asyncio.ensure_future(self._after_grace(user_id))
        self._grace.add(task)
        task.add_done_callback(self._grace.discard)

    async def _after_grace(self, user_id: int) -> None:
        await asyncio.sleep(self.reconnect_grace_s)
        agent = self.directory.by_user(user_id)
        if agent is None or self.hub.connected(user_id):
            return
        call = self.voice.current_for(agent.agent_id)
        if call is not None and call.offer is not None and call.state == "offered":
            await self.voice.decline(user_id, call.offer.id)
        rec = self.runner.engine.store.agent(agent.agent_id)
        if rec is not None and rec.presence is Presence.READY and not any(
                s is SlotState.BUSY for _c, s in rec.slots.values()):
            try:
                await self.runner.handle(AgentPresence(agent.agent_id, Presence.NOT_READY, "disconnected"))
            except RoutingError:
                log.exception("could not set agent %s not-ready", agent.agent_id)

    # ------------------------------------------------------------------ messages
    async def handle(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        handler = self.handlers.get(str(msg.get("type")))
        if handler is None:
            raise MessageRefused("unknown_type", f"unknown message type {msg.get('type')!r}")
        try:
            return await handler(user, msg)
        except NotFound as e:
            raise MessageRefused("not_found", str(e)) from None
        except CrmError as e:
            raise MessageRefused("invalid", str(e)) from None
        except RoutingError as e:
            raise MessageRefused("invalid", str(e)) from None

    def _agent(self, user: WebUser) -> str:
        agent = self.directory.by_user(user.id)
        if agent is None:
            raise MessageRefused("forbidden", "only agents with a routing profile can do this")
        return agent.agent_id

    async def set_state(self, user: WebUser, msg: dict[str, Any]) -> None:
        aid = self._agent(user)
        state = msg.get("state")
        if state not in ("ready", "not_ready"):
            raise MessageRefused("invalid", "state must be ready or not_ready")
        reason = msg.get("reason") if state == "not_ready" else None
        if state == "not_ready" and reason not in {c for c, _ in self.reason_codes}:
            raise MessageRefused("invalid", f"unknown reason code {reason!r}")
        presence = Presence.READY if state == "ready" else Presence.NOT_READY
        await self.runner.handle(AgentPresence(aid, presence, reason))
        self.directory.push_state(aid)
        return None

    async def ack_offer(self, user: WebUser, msg: dict[str, Any]) -> None:
        if self.voice.ack(user.id, str(msg.get("offer_id"))) is None:
            raise MessageRefused("not_found", "no such pending offer")
        return None

    async def decline_offer(self, user: WebUser, msg: dict[str, Any]) -> None:
        if not await self.voice.decline(user.id, str(msg.get("offer_id"))):
            raise MessageRefused("not_found", "no such pending offer")
        return None

    async def _softphone(self, user: WebUser, msg: dict[str, Any], action: str) -> None:
        phone = self.voice.softphone
        agent = self.directory.by_user(user.id)
        if phone is None or agent is None or not agent.extension:
            raise MessageRefused("forbidden", "the soft-phone works only with the simulated PBX")
        call = self.voice.current_for(agent.agent_id)
        if call is None or call.interaction_id != msg.get("interaction_id"):
            raise MessageRefused("not_found", "no such contact on your phone")
        ok = await (phone.answer(agent.extension) if action == "answer" else phone.hangup(agent.extension))
        if not ok:
            raise MessageRefused("invalid", f"the phone cannot {action} now")

    async def answer(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self._softphone(user, msg, "answer")

    async def hangup(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self._softphone(user, msg, "hangup")

    # ------------------------------------------------------------------ call controls
    def _controlled(self, user: WebUser, msg: dict[str, Any]) -> Any:
        """The live call `interaction_id` if this agent handles it: an agent controls only their
        own calls (forbidden otherwise)."""
        aid = self._agent(user)
        iid = msg.get("interaction_id")
        call = self.voice.current_for(aid)
        if call is not None and call.interaction_id == iid:
            return call
        if isinstance(iid, int) and iid in self.voice.calls:
            raise MessageRefused("forbidden", "that call is handled by another agent")
        raise MessageRefused("not_found", "no such call on your console")

    async def hold(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.hold(self._controlled(user, msg))

    async def retrieve(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.retrieve(self._controlled(user, msg))

    async def transfer(self, user: WebUser, msg: dict[str, Any]) -> None:
        notes = msg.get("notes")
        await self.voice.transfer(self._controlled(user, msg), str(msg.get("target_type")),
                                  str(msg.get("target") or ""), notes if isinstance(notes, str) else None)

    async def recording(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.recording(self._controlled(user, msg), str(msg.get("action")))

    async def escalate(self, user: WebUser, msg: dict[str, Any]) -> None:
        """The agent escalates the live call: to a specialist queue, or to a supervisor who takes
        calls, through routing with the record and the reason (like a blind transfer)."""
        call = self._controlled(user, msg)
        reason = str(msg.get("reason") or "").strip()
        queue, supervisor = msg.get("queue"), msg.get("supervisor")
        if not reason:
            raise MessageRefused("invalid", "say why the call is escalated")
        if (queue is None) == (supervisor is None):
            raise MessageRefused("invalid", "escalate to a queue or to a supervisor")
        if supervisor is not None:
            try:
                u = await self.store.get_user(str(supervisor))
            except NotFound:
                raise MessageRefused("not_found", f"no supervisor {supervisor!r}") from None
            if "supervisor" not in set(u.roles) or self.directory.agents.get(str(u.id)) is None:
                raise MessageRefused("invalid", f"{supervisor} is not a supervisor who takes calls")
            await self.voice.transfer(call, "agent", u.username, reason,
                                      escalation={"escalation_queue": f"supervisor:{u.username}"})
        else:
            await self.voice.transfer(call, "queue", str(queue), reason,
                                      escalation={"escalation_queue": str(queue)})

    async def dial(self, user: WebUser, msg: dict[str, Any]) -> None:
        """Click-to-dial a customer (their first phone number) or a number."""
        import re

        aid = self._agent(user)
        agent = self.directory.agents.get(aid)
        if agent is None:
            raise MessageRefused("forbidden", "only agents with a routing profile can do this")
        cid, number = msg.get("customer_id"), msg.get("number")
        if isinstance(cid, int):
            card = await self.store.customer_card(cid)
            phones = [p.value for p in card.contact_points if p.kind == "phone"]
            if number is None:
                if not phones:
                    raise MessageRefused("invalid", "that customer has no phone number")
                number = phones[0]
        if not isinstance(number, str) or not re.fullmatch(r"\+[0-9]{3,20}", number):
            raise MessageRefused("invalid", "a number is + and 3 to 20 digits")
        await self.voice.dial(agent, number, cid if isinstance(cid, int) else None)

    async def consult(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.consult(self._controlled(user, msg), str(msg.get("target_type")),
                                 str(msg.get("target") or ""))

    async def consult_complete(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.consult_end(self._controlled(user, msg), "complete")

    async def consult_cancel(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.consult_end(self._controlled(user, msg), "cancel")

    async def consult_conference(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.conference.start(self._controlled(user, msg))

    async def conference_leave(self, user: WebUser, msg: dict[str, Any]) -> None:
        await self.voice.conference.leave(self._controlled(user, msg))

    async def submit_wrapup(self, user: WebUser, msg: dict[str, Any]) -> None:
        aid = self._agent(user)
        iid = msg.get("interaction_id")
        call = self.voice.current_for(aid)
        if call is None or call.interaction_id != iid or call.state != "wrapup":
            raise MessageRefused("not_found", "no contact in wrap-up with that id")
        code, notes = msg.get("disposition"), msg.get("notes")
        if not code or not isinstance(notes, str) or not notes.strip():
            raise MessageRefused("invalid", "a disposition and notes are required")
        ticket_spec = msg.get("ticket")
        ticket = None
        if call.transferred:  # the call went on with another agent: this agent's notes go on the timeline
            await self.store.append_event(call.interaction_id, "wrapup", data={
                "disposition": code, "notes": notes, "agent": user.username, "transferred": True})
            self.voice.wrapup_done(call)
            self.hub.send(user.id, "wrapup_saved", interaction_id=call.interaction_id, disposition=code,
                          ticket=None)
            try:
                await self.runner.handle(WrapUpEnded(aid))
            except RoutingError:
                pass
            self.directory.push_state(aid)
            return None
        await self.store.set_disposition(call.interaction_id, str(code), notes, agent_id=user.id)
        if isinstance(ticket_spec, dict) and ticket_spec.get("number"):
            t = await self.store.get_ticket(str(ticket_spec["number"]))
            await self.store.link_interaction(t.id, call.interaction_id)
            if ticket_spec.get("status"):
                t = await self.store.update_ticket_status(t.id, str(ticket_spec["status"]))
            ticket = t
        elif isinstance(ticket_spec, dict) and call.customer_id is not None:
            ticket = await self.store.create_ticket(
                call.customer_id, str(ticket_spec.get("type")), str(ticket_spec.get("subject") or ""),
                description=ticket_spec.get("description"), interaction_ids=[call.interaction_id])
        elif isinstance(ticket_spec, dict):
            raise MessageRefused("invalid", "link the caller to a customer before opening a ticket")
        await self.store.set_state(call.interaction_id, "wrapup_done", agent_id=user.id)
        await self.store.append_event(call.interaction_id, "wrapup", data={
            "disposition": code, "ticket": ticket.number if ticket else None, "agent": user.username})
        self.voice.wrapup_done(call)
        tview = {"number": ticket.number, "type": ticket.type, "status": ticket.status} if ticket else None
        self.hub.send(user.id, "wrapup_saved", interaction_id=call.interaction_id, disposition=code,
                      ticket=tview)
        try:
            await self.runner.handle(WrapUpEnded(aid))
        except RoutingError:
            pass  # the wrap-up timer had already made the agent ready
        self.directory.push_state(aid)
        return None

    async def search(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any]:
        q = str(msg.get("q") or "").strip()
        page = int(msg.get("page") or 1)
        if not q:
            raise MessageRefused("invalid", "type something to search for")
        res = await self.store.search(q, page=page, page_size=10)
        points = await self.store.contact_points_of([h.customer_id for h in res.items])
        items = [{"id": h.customer_id, "name": h.name, "tier": h.tier, "type": h.type,
                  "phones": [p.value for p in points[h.customer_id] if p.kind == "phone"],
                  "emails": [p.value for p in points[h.customer_id] if p.kind == "email"]}
                 for h in res.items]
        return {"type": "search_results", "q": q, "items": items, "page": res.page,
                "has_more": res.has_more}

    async def create_customer(self, user: WebUser, msg: dict[str, Any]) -> None:
        phones = [msg["phone"]] if msg.get("phone") else []
        emails = [msg["email"]] if msg.get("email") else []
        call = self._call_of(user, msg.get("interaction_id"))
        if call is not None and call.caller and not phones:
            phones = [call.caller]
        c = await self.store.create_customer(str(msg.get("name") or ""), phones=phones, emails=emails)
        await self._linked(user, call, c.id)

    async def link_number(self, user: WebUser, msg: dict[str, Any]) -> None:
        call = self._call_of(user, msg.get("interaction_id"))
        if call is None:
            raise MessageRefused("not_found", "no such contact")
        cid = int(msg.get("customer_id") or 0)
        if call.caller:
            await self.store.add_contact_point(cid, "phone", call.caller)
        await self._linked(user, call, cid)

    async def _linked(self, user: WebUser, call: Any, customer_id: int) -> None:
        if call is not None:
            await self.store.link_customer(call.interaction_id, customer_id)
            call.customer_id = customer_id
        card = await self.store.customer_card(customer_id)
        self.hub.send(user.id, "customer", interaction_id=call.interaction_id if call else None,
                      card=card.to_dict())

    async def update_customer(self, user: WebUser, msg: dict[str, Any]) -> None:
        cid = int(msg.get("customer_id") or 0)
        fields = {k: msg[k] for k in ("name", "notes") if k in msg}
        if "customer_type" in msg:
            fields["type"] = msg["customer_type"]
        if fields:
            await self.store.update_customer(cid, **fields)
        if "tier_override" in msg:
            if msg["tier_override"] is None:
                await self.store.clear_tier_override(cid, actor=user.username)
            else:
                await self.store.set_tier_override(cid, str(msg["tier_override"]), actor=user.username)
        call = self._call_of(user, msg.get("interaction_id"))
        card = await self.store.customer_card(cid)
        self.hub.send(user.id, "customer", interaction_id=call.interaction_id if call else None,
                      card=card.to_dict())

    def _call_of(self, user: WebUser, interaction_id: Any) -> Any:
        agent = self.directory.by_user(user.id)
        call = self.voice.current_for(agent.agent_id) if agent else None
        if interaction_id is None or call is None or call.interaction_id != interaction_id:
            return None
        return call

