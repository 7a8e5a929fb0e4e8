"""Email contacts end to end.

    SMTP / IMAP -> stored whole with its interaction (before 250 / before the \\Seen flag)
      -> parsed (worker thread) -> customer identified or created -> threaded (Message-ID,
         In-Reply-To, References, [T-000123] in the subject) into a conversation and its ticket
      -> acknowledged (new conversations; never to bounces, lists or auto-replies)
      -> routed (Channel.EMAIL, the email skill, capacity and mixing rules)
      -> offered in the console -> accepted -> replied to (smarthost) -> done -> wrap-up

Every step, failures included, lands on the interaction's timeline. The console hears about a
state only once it is stored (a reply only once the smarthost took it).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from callcenter.channels.email import outbound
from callcenter.channels.email.parse import Limits, Parsed, parse
from callcenter.facade import MessageRefused, WebUser
from callcenter.services.agents import AgentDirectory
from callcenter.services.consoles import ConsoleHub, Link
from callcenter.services.routing_runner import RoutingRunner
from crm_core import email as mail
from crm_core.errors import Conflict, CrmError, NotFound
from crm_core.store import CrmStore
from routing import (
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    Decision,
    Ended,
    OfferAccepted,
    OfferDeclined,
    Requeue,
    RoutingError,
    Tier,
    WrapUpEnded,
)
from routing import Offer as RoutingOffer

log = logging.getLogger(__name__)

MAX_REPLY_CHARS = 100_000
VIEW_TEXT_CHARS = 20_000
VIEW_HTML_CHARS = 50_000
VIEW_MESSAGES = 20
WITHDRAWN = {"no-answer": "no_answer", "declined": "declined", "agent-offline": "timeout"}


@dataclass(frozen=True)
class EmailOptions:
    address: str = "support@example.com"
    display_name: str = "Customer service"
    queue: str = "general"
    skill: str = "email"
    acknowledge: bool = True
    wrapup_s: float = 60.0
    attachments_dir: Path = Path("var/email")
    limits: Limits = Limits()
    smarthost: outbound.Smarthost = outbound.Smarthost("127.0.0.1", 25)
    own_addresses: frozenset[str] = frozenset()
    workers: int = 1

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1]


@dataclass
class EmailOffer:
    id: str
    agent_id: str
    reasons: list[dict[str, Any]]
    expires_at: str
    message: dict[str, Any] | None = None
    settled: bool = False


@dataclass
class EmailContact:
    interaction_id: int
    email_id: int
    thread_id: int
    ticket_id: int | None
    ticket: str | None  # T-000123
    customer_id: int | None
    tier: str
    address: str | None  # where replies go
    subject: str
    queue: str
    state: str = "queued"  # queued, offered, open, wrapup, done
    offer: EmailOffer | None = None
    agent_id: str | None = None
    wrapup_until: str | None = None
    card: dict[str, Any] | None = None
    replied: int = 0

    @property
    def contact_id(self) -> str:
        return str(self.interaction_id)


class EmailService:
    def __init__(self, store: CrmStore, runner: RoutingRunner, directory: AgentDirectory, hub: ConsoleHub,
                 options: EmailOptions, *, mono: Callable[[], float] = time.monotonic) -> None:
        self.store, self.runner, self.directory, self.hub = store, runner, directory, hub
        self.options = options
        self.mono = mono
        self.contacts: dict[int, EmailContact] = {}
        self.inbox: asyncio.Queue[mail.Received] = asyncio.Queue()
        self.processed = 0
        # called with (raw, parsed) for every inbound message (campaigns: hard bounces)
        self.on_parsed: list[Any] = []
        self._raw: dict[int, tuple[bytes, str, str]] = {}  # email id -> (raw, envelope from, source)
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._workers = [asyncio.ensure_future(self._work()) for _ in range(max(1, options.workers))]
        options.attachments_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ intake
    async def deliver(self, raw: bytes, envelope_from: str, rcpt_tos: list[str], *, source: str = "smtp",
                      imap: tuple[str, int, int] | None = None) -> bool:
        """Store an inbound message (returns once it is stored), then process it in the
        background. False: an IMAP message taken before (nothing written)."""
        received = await mail.receive(self.store.db, raw, source=source, envelope_from=envelope_from,
                                      envelope_to=rcpt_tos, imap=imap)
        if received is None:
            return False
        self._raw[received.email_id] = (raw, envelope_from or "", source)  # saves reading it back
        self.inbox.put_nowait(received)
        return True

    async def take_imap(self, raw: bytes, mailbox: str, uidvalidity: int, uid: int) -> bool:
        return await self.deliver(raw, "", [self.options.address], source="imap",
                                  imap=(mailbox, uidvalidity, uid))

    async def imap_too_big(self, mailbox: str, uidvalidity: int, uid: int, size: int) -> None:
        """An IMAP message over the size limit stays in the mailbox; it is logged, not routed."""
        received = await mail.receive(self.store.db, b"", source="imap", envelope_from=None,
                                      envelope_to=[self.options.address], imap=(mailbox, uidvalidity, uid))
        if received is None:
            return
        why = f"{size} bytes is over the limit: left in {mailbox} (UID {uid}), flagged $TooBig"
        await mail.update_email(self.store.db, received.email_id, status="failed", error=why,
                                events=[("too_big", False, {"bytes": size, "mailbox": mailbox, "uid": uid})])
        try:
            await self.store.set_state(received.interaction_id, "failed")
        except CrmError as e:
            await self._event(received.interaction_id, "state_failed", ok=False, error=str(e))

    async def imap_taken(self, mailbox: str, uidvalidity: int, uids: list[int]) -> set[int]:
        return await mail.taken_uids(self.store.db, mailbox, uidvalidity, uids)

    async def wait_processed(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` messages in all have been processed (tests, the benchmark)."""
        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.processed >= count)
        await asyncio.wait_for(reached(), timeout)

    async def _work(self) -> None:
        while True:
            received = await self.inbox.get()
            try:
                await self._process(received)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad message never stops the worker
                log.exception("email %s could not be processed", received.email_id)
            async with self._changed:
                self.processed += 1
                self._changed.notify_all()

    async def _event(self, iid: int, kind: str, ok: bool = True, **data: Any) -> None:
        try:
            await self.store.append_event(iid, kind, ok=ok, data=data)
        except CrmError:
            log.exception("timeline append failed for interaction %s", iid)

    async def _process(self, received: mail.Received) -> None:
        iid, eid = received.interaction_id, received.email_id
        opts = self.options
        if eid in self._raw:
            raw, envelope_from, source = self._raw.pop(eid)
        else:  # recovered after a restart
            row = await mail.get_email(self.store.db, eid)
            raw, envelope_from, source = row.raw, row.envelope_from or "", row.source
        try:
            # SMTP: the envelope sender is known ("" is the null reverse-path of a bounce);
            # IMAP: it is not (the Return-Path header tells instead)
            envelope = envelope_from if source == "smtp" else None
            parsed = await asyncio.to_thread(parse, raw, envelope_from=envelope,
                                             own_addresses=opts.own_addresses, limits=opts.limits)
        except Exception as e:  # noqa: BLE001 - parse() should never raise; if it does, keep going
            parsed = Parsed(problems=[f"unreadable message: {type(e).__name__}"], auto="unreadable",
                            text=raw[:opts.limits.max_text_chars].decode("utf-8", "replace"))
        await self._event(iid, "parsed", ok=not parsed.problems, subject=parsed.subject[:200],
                          **{"from": parsed.from_address, "message_id": parsed.message_id,
                             "attachments": len(parsed.attachments), "auto": parsed.auto,
                             "problems": parsed.problems[:20]})
        for hook in self.on_parsed:
            try:
                await hook(raw, parsed)
            except Exception:  # noqa: BLE001 - a hook never stops the message
                log.exception("email %s: on_parsed hook failed", eid)
        if parsed.message_id and await self._duplicate(iid, eid, parsed):
            return
        contact: EmailContact | None = None
        try:
            customer = await self._customer(iid, parsed)
            thread_id, ticket_id, ticket, how = await self._thread(iid, eid, parsed, customer)
            stored = await self._save_attachments(eid, parsed)
            await mail.update_email(
                self.store.db, eid, status="processed", message_id=parsed.message_id,
                in_reply_to=parsed.in_reply_to, refs=parsed.references, thread_id=thread_id,
                ticket_id=ticket_id, subject=parsed.subject, from_address=parsed.from_address,
                to_addresses=parsed.to, text_body=parsed.text, html_safe=parsed.html_safe,
                auto=parsed.auto, problems=parsed.problems,
                events=[("thread", True, {"how": how, "thread_id": thread_id, "ticket": ticket,
                                          "attachments_stored": stored})])
            contact = EmailContact(
                iid, eid, thread_id, ticket_id, ticket, customer.id if customer else None,
                customer.tier if customer else "regular", parsed.reply_to or parsed.from_address,
                parsed.subject, opts.queue if opts.queue in self.runner.engine.config.queues
                else next(iter(self.runner.engine.config.queues)))
            if how == "new" and ticket is not None and opts.acknowledge:
                if parsed.auto is None and contact.address:
                    self.spawn(self._acknowledge(contact, parsed))
                else:
                    await self._event(iid, "auto_ack", ok=True, sent=False,
                                      reason=parsed.auto or "no address to answer")
        except Exception as e:  # noqa: BLE001 - stored whole already; say what failed and route it
            log.exception("email %s: processing failed", eid)
            why = f"{type(e).__name__}: {e}"
            await mail.update_email(self.store.db, eid, status="failed", error=why[:2000],
                                    subject=parsed.subject, text_body=parsed.text,
                                    from_address=parsed.from_address, thread_id=eid)
            await self._event(iid, "process_failed", ok=False, error=f"{type(e).__name__}: {e}"[:500])
            if contact is None:
                contact = EmailContact(iid, eid, eid, None, None, None, "regular", parsed.from_address,
                                       parsed.subject, next(iter(self.runner.engine.config.queues)))
        await self._route(contact)

    async def recover(self) -> int:
        """After a restart: emails stored but never processed are processed now; emails that were
        waiting for an agent (queued, or offered when the center stopped) are routed again."""
        n = 0
        for row, state in await mail.unfinished(self.store.db):
            if row.interaction_id is None or row.interaction_id in self.contacts:
                continue
            n += 1
            if state == "new" or row.status == "received":
                await self._event(row.interaction_id, "recovered", state=state, step="process")
                self.inbox.put_nowait(mail.Received(row.id, row.interaction_id))
                continue
            try:
                i = await self.store.get_interaction(row.interaction_id)
                customer = await self.store.get_customer(i.customer_id) if i.customer_id else None
                ticket = await self.store.get_ticket(row.ticket_id) if row.ticket_id else None
            except CrmError as e:
                await self._event(row.interaction_id, "recovered", ok=False, error=str(e)[:300])
                continue
            queues = self.runner.engine.config.queues
            queue = self.options.queue if self.options.queue in queues else next(iter(queues))
            if i.queue and i.queue in queues:
                queue = i.queue
            contact = EmailContact(row.interaction_id, row.id, row.thread_id or row.id, row.ticket_id,
                                   ticket.number if ticket else None, customer.id if customer else None,
                                   customer.tier if customer else "regular", row.from_address,
                                   row.subject or "", queue)
            await self._event(row.interaction_id, "recovered", state=state, step="route")
            await self._route(contact)
        return n

    async def _duplicate(self, iid: int, eid: int, parsed: Parsed) -> bool:
        """The same message delivered again (an SMTP retry after a lost 250, or by SMTP and IMAP):
        stored and logged, not routed or acknowledged a second time."""
        assert parsed.message_id is not None
        first = await mail.find_duplicate(self.store.db, eid, parsed.message_id, parsed.from_address)
        if first is None:
            return False
        await mail.update_email(
            self.store.db, eid, status="duplicate", message_id=parsed.message_id,
            subject=parsed.subject, from_address=parsed.from_address,
            thread_id=first.thread_id or first.id, ticket_id=first.ticket_id,
            events=[("duplicate", True, {"of_email": first.id, "of_interaction": first.interaction_id})])
        for state in ("ended", "wrapup_done"):
            try:
                await self.store.set_state(iid, state)
            except CrmError as e:
                await self._event(iid, "state_failed", ok=False, state=state, error=str(e))
        return True

    async def _customer(self, iid: int, parsed: Parsed) -> Any:
        addr = parsed.from_address
        if not addr:
            await self._event(iid, "identify", ok=False, known=False, reason="no readable From address")
            return None
        created = False
        try:
            customer = await self.store.identify(email=addr)
            if customer is None:
                name = parsed.from_name or addr.split("@")[0]
                try:
                    customer = await self.store.create_customer(name, emails=[addr])
                    created = True
                except Conflict:  # created meanwhile by another message from the same address
                    customer = await self.store.identify(email=addr)
        except CrmError as e:
            await self._event(iid, "identify", ok=False, error=str(e)[:300])
            return None
        if customer is None:
            return None
        await self.store.link_customer(iid, customer.id)
        await self._event(iid, "identify", known=not created, created=created, customer_id=customer.id,
                          tier=customer.tier)
        return customer

    async def _thread(self, iid: int, eid: int, parsed: Parsed,
                      customer: Any) -> tuple[int, int | None, str | None, str]:
        """(thread_id, ticket_id, ticket number, how): a reply joins its conversation and ticket;
        a new conversation opens a ticket. Only the conversation's own customer can join it."""
        db = self.store.db
        cid = customer.id if customer else None
        thread_id: int | None = None
        ticket_id: int | None = None
        how = "new"
        prior = await mail.find_by_message_ids(db, parsed.thread_refs)
        if prior is not None and prior.id != eid:
            owner = await self._owner(prior)
            if cid is not None and owner == cid:
                thread_id, ticket_id, how = prior.thread_id or prior.id, prior.ticket_id, "references"
            else:
                parsed.problems.append("a reply from someone else than the conversation's customer: "
                                       "new conversation")
        token = parsed.ticket_token
        if thread_id is None and token and cid is not None:
            try:
                t = await self.store.get_ticket(token)
            except NotFound:
                t = None
            if t is not None and t.customer_id == cid:
                latest = await mail.latest_in_ticket(db, t.id)
                thread_id = latest.thread_id if latest and latest.thread_id else eid
                ticket_id, how = t.id, "ticket token"
            elif t is not None:
                parsed.problems.append(f"ticket token {token} of another customer ignored")
        if thread_id is None:
            thread_id = eid
        number = None
        if ticket_id is not None:
            t = await self.store.link_interaction(ticket_id, iid)
            number = t.number
            if t.status == "solved":
                await self.store.update_ticket_status(t.id, "open")
        elif cid is not None:
            t = await self.store.create_ticket(cid, "inquiry", parsed.subject or "(no subject)",
                                               description=parsed.text[:2000] or None,
                                               interaction_ids=[iid])
            ticket_id, number = t.id, t.number
        return thread_id, ticket_id, number, how

    async def _owner(self, msg: mail.EmailMessage) -> int | None:
        if msg.interaction_id is None:
            return None
        try:
            return (await self.store.get_interaction(msg.interaction_id)).customer_id
        except NotFound:
            return None

    async def _save_attachments(self, eid: int, parsed: Parsed) -> int:
        if not parsed.attachments:
            return 0
        base = self.options.attachments_dir
        rows = []
        for n, a in enumerate(parsed.attachments):
            name = f"{eid}-{n}-{secrets.token_hex(8)}"  # ours; never the sender's name or path
            await asyncio.to_thread((base / name).write_bytes, a.data)
            rows.append((name, a.filename, a.content_type, len(a.data)))
        await mail.add_attachments(self.store.db, eid, rows)
        return len(rows)

    # ------------------------------------------------------------------ automatic acknowledgement
    async def _acknowledge(self, contact: EmailContact, parsed: Parsed) -> None:
        opts = self.options
        assert contact.address is not None and contact.ticket is not None
        in_reply_to, refs = outbound.thread_headers(parsed.message_id, parsed.references)
        msg = outbound.compose(sender=opts.address, sender_name=opts.display_name, to=contact.address,
                               subject=outbound.reply_subject(parsed.subject, contact.ticket),
                               body=outbound.acknowledgement(contact.ticket, parsed.subject),
                               domain=opts.domain, in_reply_to=in_reply_to, references=refs, auto=True)
        await self._send(contact, msg, source="auto", kind="auto_ack", envelope_from="")

    async def _send(self, contact: EmailContact, msg: Any, *, source: str, kind: str,
                    envelope_from: str, agent: str | None = None) -> tuple[int, str | None]:
        """Send through the smarthost and store it (sent or send_failed) with its timeline event.
        Returns (email id, the failure or None)."""
        error = None
        data = msg.as_bytes()
        try:
            data = await outbound.send(self.options.smarthost, envelope_from, [str(msg["To"])], msg)
        except outbound.SendFailed as e:
            error = str(e)
        fields = {"message_id": str(msg["Message-ID"]), "in_reply_to": msg["In-Reply-To"],
                  "refs": str(msg["References"] or "").split(), "thread_id": contact.thread_id,
                  "ticket_id": contact.ticket_id, "subject": str(msg["Subject"]),
                  "from_address": self.options.address, "to_addresses": [str(msg["To"])],
                  "text_body": msg.get_content(), "error": error}
        data_ev = {"to": str(msg["To"]), "subject": str(msg["Subject"]), "message_id": fields["message_id"],
                   **({"agent": agent} if agent else {}), **({"error": error} if error else {})}
        eid = await mail.record_outbound(self.store.db, interaction_id=contact.interaction_id,
                                         status="send_failed" if error else "sent", source=source,
                                         raw=data, fields=fields, event=(kind, error is None, data_ev))
        return eid, error

    # ------------------------------------------------------------------ routing
    async def _route(self, contact: EmailContact) -> None:
        self.contacts[contact.interaction_id] = contact
        skills = {self.options.skill: 1} if self.options.skill else {}
        try:
            await self.store.set_state(contact.interaction_id, "queued", queue=contact.queue,
                                       events=(("queue", {"queue": contact.queue, "skills": skills}),))
        except CrmError as e:
            await self._event(contact.interaction_id, "state_failed", ok=False, state="queued", error=str(e))
        try:
            tier = Tier(contact.tier)
        except ValueError:
            tier = Tier.REGULAR
        c = Contact(contact.contact_id, Channel.EMAIL, contact.queue, self.mono(),
                    customer_id=str(contact.customer_id or ""), tier=tier, skills=skills)
        try:
            await self.runner.handle(ContactArrived(c))
        except RoutingError as e:
            await self._event(contact.interaction_id, "routing_refused", ok=False, error=str(e))

    async def perform(self, decisions: list[Decision]) -> set[str]:
        """The engine's decisions about email contacts (runs under the runner's lock: anything
        that feeds the engine again is spawned). Returns the agents touched."""
        touched: set[str] = set()
        for d in decisions:
            cid = getattr(d, "contact_id", None)
            contact = self.contacts.get(int(cid)) if isinstance(cid, str) and cid.isdigit() else None
            if contact is None:
                continue
            if isinstance(d, RoutingOffer):
                await self._offer(contact, d)
            elif isinstance(d, Requeue):
                await self._requeued(contact, d)
            elif isinstance(d, Ended):
                await self._event(contact.interaction_id, "routing_ended", outcome=str(d.outcome.value))
            else:
                await self._event(contact.interaction_id, type(d).__name__.lower(), detail=str(d)[:500])
            agent = getattr(d, "agent_id", None)
            if agent:
                touched.add(agent)
        return touched

    async def _offer(self, contact: EmailContact, d: RoutingOffer) -> None:
        agent = self.directory.agents.get(d.agent_id)
        if agent is None:
            return
        expires = datetime.now(UTC) + timedelta(seconds=max(0.0, d.lease_until - self.mono()))
        reasons = [{"name": p.name, "value": p.value, "note": p.note} for p in d.reasons]
        offer = EmailOffer(secrets.token_urlsafe(9), d.agent_id, reasons, expires.isoformat())
        contact.offer, contact.agent_id, contact.state = offer, d.agent_id, "offered"
        # stored and sent outside the routing runner's lock (it waits on the database: under load
        # every other routing step waited behind it, and accepts came after the offers' leases)
        self.spawn(self._send_offer(contact, offer, agent, reasons))

    async def _send_offer(self, contact: EmailContact, offer: EmailOffer, agent: Any,
                          reasons: list[dict[str, Any]]) -> None:
        try:
            await self.store.set_state(contact.interaction_id, "offered", agent_id=agent.user_id,
                                       events=(("offer", {"agent": agent.username, "reasons": reasons}),))
        except CrmError as e:
            await self._event(contact.interaction_id, "state_failed", ok=False, state="offered", error=str(e))
        card = await self._card(contact)
        if offer.settled or contact.offer is not offer:  # withdrawn meanwhile: nothing to send
            return
        contact.card = card
        offer.message = self.offer_message(contact)
        if not self.hub.send(agent.user_id, "offer", **offer.message):
            await self._event(contact.interaction_id, "offer_undelivered", ok=False, agent=agent.username)
            self.spawn(self._decline(contact, offer, "agent_disconnected"))

    async def _card(self, contact: EmailContact) -> dict[str, Any] | None:
        if contact.customer_id is None:
            return None
        try:
            return (await self.store.customer_card(contact.customer_id)).to_dict()
        except CrmError as e:
            await self._event(contact.interaction_id, "pop_failed", ok=False, error=str(e))
            return None

    def offer_message(self, contact: EmailContact) -> dict[str, Any]:
        assert contact.offer is not None
        card = contact.card
        return {"offer_id": contact.offer.id, "interaction_id": contact.interaction_id, "channel": "email",
                "queue": contact.queue, "caller": (contact.address or "unknown sender")[:128],
                "pop": {"known": card is not None, "card": card}, "ivr_path": [],
                "reasons": contact.offer.reasons, "expires_at": contact.offer.expires_at}

    async def _requeued(self, contact: EmailContact, d: Requeue) -> None:
        offer = contact.offer
        await self._event(contact.interaction_id, "requeue", ok=False, reason=d.reason, agent_id=d.agent_id)
        if offer is None or offer.settled or offer.agent_id != d.agent_id:
            return
        offer.settled = True
        contact.offer, contact.state, contact.agent_id = None, "queued", None
        await self._stored_state(contact, "queued")
        agent = self.directory.agents.get(d.agent_id)
        if agent is not None:
            self.hub.send(agent.user_id, "offer_withdrawn", offer_id=offer.id,
                          interaction_id=contact.interaction_id, reason=WITHDRAWN.get(d.reason, "timeout"))

    async def _stored_state(self, contact: EmailContact, state: str, **kw: Any) -> None:
        try:
            await self.store.set_state(contact.interaction_id, state, **kw)
        except CrmError as e:
            await self._event(contact.interaction_id, "state_failed", ok=False, state=state, error=str(e))

    async def _decline(self, contact: EmailContact, offer: EmailOffer, why: str) -> None:
        if offer.settled or contact.offer is not offer:
            return
        offer.settled = True
        contact.offer, contact.state, contact.agent_id = None, "queued", None
        await self._event(contact.interaction_id, "decline", ok=False, reason=why)
        await self._stored_state(contact, "queued")
        agent = self.directory.agents.get(offer.agent_id)
        if agent is not None:
            self.hub.send(agent.user_id, "offer_withdrawn", offer_id=offer.id,
                          interaction_id=contact.interaction_id,
                          reason="declined" if why == "declined" else "timeout")
        try:
            await self.runner.handle(OfferDeclined(contact.contact_id, offer.agent_id))
        except RoutingError as e:
            await self._event(contact.interaction_id, "routing_refused", ok=False, error=str(e))
        self.directory.push_state(offer.agent_id)

    # ------------------------------------------------------------------ the console
    def console_handlers(self, previous: dict[str, Any]) -> dict[str, Any]:
        """Handlers to install in ConsoleService.handlers; ack_offer, decline_offer and
        submit_wrapup fall through to `previous` for contacts that are not emails."""
        def chained(mine: Any, name: str) -> Any:
            other = previous.get(name)

            async def handler(user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
                handled, reply = await mine(user, msg)
                if handled or other is None:
                    return reply  # type: ignore[no-any-return]
                return await other(user, msg)  # type: ignore[no-any-return]
            return handler

        return {"ack_offer": chained(self._ack_offer, "ack_offer"),
                "decline_offer": chained(self._decline_offer, "decline_offer"),
                "submit_wrapup": chained(self._submit_wrapup, "submit_wrapup"),
                "email_accept": self.accept, "email_reply": self.reply, "email_done": self.done}

    def _agent_id(self, user: WebUser) -> str:
        agent = self.directory.by_user(user.id)
        if agent is None:
            raise MessageRefused("forbidden", "only agents with a routing profile can do this")
        return agent.agent_id

    def _by_offer(self, user: WebUser, offer_id: Any) -> EmailContact | None:
        for c in self.contacts.values():
            o = c.offer
            if o is not None and o.id == offer_id and o.agent_id == str(user.id) and not o.settled:
                return c
        return None

    def _mine(self, user: WebUser, msg: dict[str, Any], states: tuple[str, ...]) -> EmailContact:
        aid = self._agent_id(user)
        iid = msg.get("interaction_id")
        contact = self.contacts.get(iid) if isinstance(iid, int) else None
        if contact is None:
            raise MessageRefused("not_found", "no such email on your console")
        if contact.agent_id != aid:
            raise MessageRefused("forbidden", "that email is handled by another agent")
        if contact.state not in states:
            raise MessageRefused("conflict", f"the email is {contact.state}")
        return contact

    async def _ack_offer(self, user: WebUser, msg: dict[str, Any]) -> tuple[bool, None]:
        contact = self._by_offer(user, msg.get("offer_id"))
        if contact is None:
            return False, None
        await self._event(contact.interaction_id, "pop_ack", offer_id=msg.get("offer_id"))
        return True, None

    async def _decline_offer(self, user: WebUser, msg: dict[str, Any]) -> tuple[bool, None]:
        contact = self._by_offer(user, msg.get("offer_id"))
        if contact is None or contact.offer is None:
            return False, None
        await self._decline(contact, contact.offer, "declined")
        return True, None

    async def accept(self, user: WebUser, msg: dict[str, Any]) -> None:
        """The agent takes the offered email: it opens in their console."""
        contact = self._by_offer(user, msg.get("offer_id"))
        if contact is None or contact.offer is None:
            raise MessageRefused("not_found", "no such pending email offer")
        offer = contact.offer
        try:
            await self.runner.handle(OfferAccepted(contact.contact_id, offer.agent_id))
        except RoutingError as e:
            raise MessageRefused("conflict", f"the offer is no longer open ({e})") from None
        offer.settled = True
        contact.state = "open"
        await self._stored_state(contact, "answered", agent_id=user.id)
        await self._event(contact.interaction_id, "accept", agent=user.username)
        self._contact_state(contact, "talking")
        self.hub.send(user.id, "email", **await self.view(contact))
        self.directory.push_state(offer.agent_id)

    async def reply(self, user: WebUser, msg: dict[str, Any]) -> None:
        """Send the agent's answer through the smarthost; `email_sent` once it took it."""
        contact = self._mine(user, msg, ("open",))
        body = msg.get("body")
        if not isinstance(body, str) or not body.strip():
            raise MessageRefused("invalid", "write something to send")
        if len(body) > MAX_REPLY_CHARS:
            raise MessageRefused("too_large", f"a reply holds at most {MAX_REPLY_CHARS} characters")
        if not contact.address:
            raise MessageRefused("invalid", "this email has no address to answer")
        parent = await self._last_inbound(contact)
        in_reply_to, refs = outbound.thread_headers(parent.message_id if parent else None,
                                                    list(parent.refs) if parent else [])
        opts = self.options
        out = outbound.compose(sender=opts.address, sender_name=opts.display_name, to=contact.address,
                               subject=outbound.reply_subject(contact.subject, contact.ticket), body=body,
                               domain=opts.domain, in_reply_to=in_reply_to, references=refs)
        eid, error = await self._send(contact, out, source="console", kind="reply",
                                      envelope_from=opts.address, agent=user.username)
        if error is not None:
            raise MessageRefused("invalid", f"the reply was not sent ({error}); it is kept on the "
                                 "timeline, try again")
        contact.replied += 1
        self.hub.send(user.id, "email_sent", interaction_id=contact.interaction_id, email_id=eid,
                      to=contact.address, subject=str(out["Subject"]), message_id=str(out["Message-ID"]),
                      at=datetime.now(UTC).isoformat())

    async def _last_inbound(self, contact: EmailContact) -> mail.EmailMessage | None:
        msgs = await mail.thread(self.store.db, contact.thread_id, limit=VIEW_MESSAGES)
        inbound = [m for m in msgs if m.direction == "inbound" and m.message_id]
        if inbound:
            return inbound[-1]
        return await mail.get_email(self.store.db, contact.email_id)

    async def done(self, user: WebUser, msg: dict[str, Any]) -> None:
        """The agent is done with the email: wrap-up follows (disposition and notes)."""
        contact = self._mine(user, msg, ("open",))
        aid = self._agent_id(user)
        status = msg.get("ticket_status")
        if status is not None and contact.ticket_id is None:
            raise MessageRefused("invalid", "this email has no ticket")
        if status is not None and contact.ticket_id is not None:
            await self.store.update_ticket_status(contact.ticket_id, str(status))
            await self._event(contact.interaction_id, "ticket_status", ticket=contact.ticket, status=status,
                              agent=user.username)
        contact.state = "wrapup"
        await self._stored_state(contact, "ended")
        await self._event(contact.interaction_id, "done", agent=user.username, replies=contact.replied)
        self._contact_state(contact, "ended")
        try:
            await self.runner.handle(ContactFinished(contact.contact_id, aid, self.options.wrapup_s))
        except RoutingError as e:
            await self._event(contact.interaction_id, "routing_refused", ok=False, error=str(e))
        until = datetime.now(UTC) + timedelta(seconds=self.options.wrapup_s)
        contact.wrapup_until = until.isoformat()
        self.hub.send(user.id, "wrapup", interaction_id=contact.interaction_id,
                      required={"disposition": True, "notes": True}, until=contact.wrapup_until)
        self.directory.push_state(aid)

    async def _submit_wrapup(self, user: WebUser, msg: dict[str, Any]) -> tuple[bool, None]:
        iid = msg.get("interaction_id")
        contact = self.contacts.get(iid) if isinstance(iid, int) else None
        if contact is None or contact.state != "wrapup" or contact.agent_id != str(user.id):
            return False, None
        code, notes = msg.get("disposition"), msg.get("notes")
        if not code or not isinstance(notes, str) or not notes.strip():
            raise MessageRefused("invalid", "a disposition and notes are required")
        await self.store.set_disposition(contact.interaction_id, str(code), notes, agent_id=user.id)
        ticket = None
        spec = msg.get("ticket")
        if isinstance(spec, dict) and spec.get("number"):
            ticket = await self.store.get_ticket(str(spec["number"]))
            await self.store.link_interaction(ticket.id, contact.interaction_id)
            if spec.get("status"):
                ticket = await self.store.update_ticket_status(ticket.id, str(spec["status"]))
        elif isinstance(spec, dict) and contact.customer_id is not None:
            ticket = await self.store.create_ticket(
                contact.customer_id, str(spec.get("type")), str(spec.get("subject") or ""),
                description=spec.get("description"), interaction_ids=[contact.interaction_id])
        await self._stored_state(contact, "wrapup_done", agent_id=user.id)
        await self._event(contact.interaction_id, "wrapup", disposition=code, agent=user.username,
                          ticket=ticket.number if ticket else None)
        contact.state = "done"
        self.contacts.pop(contact.interaction_id, None)
        tview = {"number": ticket.number, "type": ticket.type, "status": ticket.status} if ticket else None
        self.hub.send(user.id, "wrapup_saved", interaction_id=contact.interaction_id, disposition=code,
                      ticket=tview)
        try:
            await self.runner.handle(WrapUpEnded(str(user.id)))
        except RoutingError:
            pass  # the wrap-up timer had already made the agent ready
        self.directory.push_state(str(user.id))
        return True, None

    def _contact_state(self, contact: EmailContact, state: str) -> None:
        agent = self.directory.agents.get(contact.agent_id or "")
        if agent is not None:
            self.hub.send(agent.user_id, "contact_state", interaction_id=contact.interaction_id,
                          state=state, at=datetime.now(UTC).isoformat())

    async def view(self, contact: EmailContact) -> dict[str, Any]:
        """The `email` message: the conversation as the console shows it (HTML already inert)."""
        db = self.store.db
        msgs = await mail.thread(db, contact.thread_id, limit=VIEW_MESSAGES)
        if not any(m.id == contact.email_id for m in msgs):
            msgs.append(await mail.get_email(db, contact.email_id))
        atts = await mail.attachments_of(db, [m.id for m in msgs])
        by_email: dict[int, list[dict[str, Any]]] = {}
        for a in atts:
            by_email.setdefault(a.email_id, []).append(
                {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size})
        items = [{
            "email_id": m.id, "direction": m.direction, "status": m.status,
            "from": (m.from_address or m.envelope_from or "")[:320], "to": list(m.to_addresses or [])[:20],
            "subject": (m.subject or "")[:998], "at": m.created_at.isoformat(),
            "text": (m.text_body or "")[:VIEW_TEXT_CHARS],
            "html": (m.html_safe[:VIEW_HTML_CHARS] if m.html_safe else None),
            "attachments": by_email.get(m.id, []), "problems": list(m.problems or [])[:20],
            "auto": m.auto} for m in msgs]
        return {"interaction_id": contact.interaction_id, "ticket": contact.ticket,
                "subject": contact.subject[:998], "customer_address": contact.address,
                "messages": items}

    async def console_connected(self, user: WebUser, link: Link) -> None:
        """Resume this agent's emails on a (re)connected console."""
        from callcenter.facade import PROTOCOL_VERSION

        def put(type_: str, **fields: Any) -> None:
            link.put({"type": type_, "v": PROTOCOL_VERSION, **fields})

        for c in list(self.contacts.values()):
            if c.agent_id != str(user.id):
                continue
            if c.state == "offered" and c.offer is not None and c.offer.message and not c.offer.settled:
                put("offer", **c.offer.message)
            elif c.state == "open":
                put("contact_state", interaction_id=c.interaction_id, state="talking",
                    at=datetime.now(UTC).isoformat())
                put("email", **await self.view(c))
            elif c.state == "wrapup":
                put("contact_state", interaction_id=c.interaction_id, state="ended",
                    at=datetime.now(UTC).isoformat())
                put("wrapup", interaction_id=c.interaction_id, required={"disposition": True, "notes": True},
                    until=c.wrapup_until)

    # ------------------------------------------------------------------ attachments (HTTP)
    async def attachment_file(self, user: WebUser, attachment_id: int) -> tuple[Path, str, str]:
        """(path, content type, display name) for the agent on the conversation or a supervisor."""
        try:
            a, m = await mail.get_attachment(self.store.db, attachment_id)
        except NotFound:
            raise MessageRefused("not_found", "no such attachment") from None
        if not set(user.roles) & {"supervisor", "admin"} and not await self._may_see(user, m):
            raise MessageRefused("forbidden", "only the agent on this conversation or a supervisor")
        path = (self.options.attachments_dir / a.stored_name).resolve()
        if not path.is_relative_to(self.options.attachments_dir.resolve()) or not path.is_file():
            raise MessageRefused("not_found", "no such attachment")
        return path, a.content_type, a.filename

    async def _may_see(self, user: WebUser, m: mail.EmailMessage) -> bool:
        thread_id = m.thread_id or m.id
        for c in self.contacts.values():
            if c.thread_id == thread_id and c.agent_id == str(user.id):
                return True
        if m.interaction_id is not None:
            try:
                return (await self.store.get_interaction(m.interaction_id)).agent_id == user.id
            except NotFound:
                return False
        return False

    # ------------------------------------------------------------------ tasks
    async def settle(self) -> None:
        """Until the background sends (acknowledgements) started so far are done and stored."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def spawn(self, aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("email task failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in [*self._workers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._tasks, return_exceptions=True)


__all__ = ["EmailContact", "EmailOptions", "EmailService"]
