"""Erasure of a customer's personal data on request, keeping anonymized statistics.

    report = await erase_customer(store, customer_id, actor="ada", files={"recordings": rec_dir,
                                                                         "attachments": mail_dir})

In one transaction: the customer row goes (its contact points and name tokens with it); their
interactions stay (channel, direction, state, times, queue, agent, disposition, CSAT score: what
reports count) but lose their link to the customer, notes, addresses, IVR path, transcript and
recording references, and their timeline entries lose their data; chat messages and emails of those
interactions are deleted; tickets keep type, status, priority and times but lose subject and
description; survey comments and callback notes and numbers are cleared. After the commit the
recording and attachment files are deleted. The audit entry records counts, never the erased data.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, inspect, select, update

from crm_core.errors import NotFound
from crm_core.models import ContactPoint, Customer, Interaction, InteractionEvent, SurveyResult, Ticket

log = logging.getLogger(__name__)
ERASED = "[erased]"


@dataclass
class ErasureReport:
    customer_id: int
    interactions: int = 0
    tickets: int = 0
    chat_messages: int = 0
    emails: int = 0
    files_deleted: int = 0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "interactions": self.interactions, "tickets": self.tickets,
                "chat_messages": self.chat_messages, "emails": self.emails,
                "files_deleted": self.files_deleted}


def _has(conn: Any, table: str) -> bool:
    return bool(inspect(conn).has_table(table))


async def erase_customer(store: Any, customer_id: int, *, actor: str = "system",
                         files: dict[str, Path | None] | None = None) -> ErasureReport:
    files = files or {}
    report = ErasureReport(customer_id)
    doomed: list[Path] = []
    async with store.db.session() as s, s.begin():
        c = await s.get(Customer, customer_id)
        if c is None:
            raise NotFound("customer", customer_id)
        emails = list((await s.execute(select(ContactPoint.value).where(
            ContactPoint.customer_id == customer_id, ContactPoint.kind == "email"))).scalars())
        rows = (await s.execute(select(Interaction.id, Interaction.recording_ref).where(
            Interaction.customer_id == customer_id))).all()
        ids = [r[0] for r in rows]
        report.interactions = len(ids)
        rec_dir = files.get("recordings")
        for _id, ref in rows:
            if ref and rec_dir is not None:
                doomed.append(Path(rec_dir) / ref)
        conn = await s.connection()
        tables = {t for t in ("chat_messages", "email_messages", "email_attachments", "callbacks")
                  if await conn.run_sync(_has, t)}
        if ids:
            await s.execute(update(Interaction).where(Interaction.id.in_(ids)).values(
                customer_id=None, notes=None, from_address=None, to_address=None, ivr_path=[],
                transcript_ref=None, recording_ref=None))
            await s.execute(update(InteractionEvent).where(InteractionEvent.interaction_id.in_(ids))
                            .values(data={}))
            await s.execute(update(SurveyResult).where(SurveyResult.interaction_id.in_(ids))
                            .values(comment=None))
        if "chat_messages" in tables and ids:
            from crm_core.chat import ChatMessageRow as ChatMessage

            report.chat_messages = (await s.execute(delete(ChatMessage).where(
                ChatMessage.interaction_id.in_(ids)))).rowcount or 0
        if "email_messages" in tables:
            from crm_core import email as mail

            cond = mail.EmailMessage.interaction_id.in_(ids) if ids else None
            if emails:
                by_sender = mail.EmailMessage.from_address.in_(emails)
                cond = by_sender if cond is None else (cond | by_sender)
            if cond is not None:
                mids = list((await s.execute(select(mail.EmailMessage.id).where(cond))).scalars())
                if mids and "email_attachments" in tables:
                    att_dir = files.get("attachments")
                    for name in (await s.execute(select(mail.EmailAttachment.stored_name).where(
                            mail.EmailAttachment.email_id.in_(mids)))).scalars():
                        if att_dir is not None:
                            doomed.append(Path(att_dir) / name)
                    await s.execute(delete(mail.EmailAttachment).where(
                        mail.EmailAttachment.email_id.in_(mids)))
                if mids:
                    report.emails = (await s.execute(delete(mail.EmailMessage).where(
                        mail.EmailMessage.id.in_(mids)))).rowcount or 0
        if "callbacks" in tables:
            from crm_core.callbacks import CallbackRow as Callback

            cb = Callback.customer_id == customer_id
            if ids:
                cb = cb | Callback.interaction_id.in_(ids) | Callback.origin_interaction_id.in_(ids)
            await s.execute(update(Callback).where(cb).values(number=ERASED, note=None))
        report.tickets = (await s.execute(update(Ticket).where(Ticket.customer_id == customer_id).values(
            subject=ERASED, description=None))).rowcount or 0
        await s.execute(update(SurveyResult).where(SurveyResult.customer_id == customer_id)
                        .values(comment=None))
        # contact points and name tokens cascade; interactions, tickets, surveys: customer_id NULL
        await s.execute(delete(Customer).where(Customer.id == customer_id))
        store._audit(s, actor, "customer.erase", "customer", customer_id, None, report.to_dict())
    for path in doomed:
        try:
            path.unlink()
            report.files_deleted += 1
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("could not delete %s while erasing customer %s", path, customer_id)
    return report
