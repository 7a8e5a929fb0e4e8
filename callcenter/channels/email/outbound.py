"""Outbound mail: composing replies and acknowledgements (pure) and handing them to the smarthost.

Replies carry In-Reply-To and References (RFC 5322 §3.6.4) and the ticket token `[T-000123]` in the
subject, so the customer's answer threads back. Acknowledgements are marked
`Auto-Submitted: auto-replied` and sent with a null envelope sender (RFC 3834), so that no
well-behaved responder answers them back.
"""
from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

RE_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd)\s*:\s*)+", re.IGNORECASE)
MAX_REFERENCES = 20


class SendFailed(Exception):
    """The smarthost did not take the message; the text says why."""


@dataclass(frozen=True)
class Smarthost:
    host: str
    port: int
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0


def reply_subject(subject: str, ticket: str | None) -> str:
    base = RE_PREFIX.sub("", subject or "").strip() or "(no subject)"
    if ticket and f"[{ticket}]" in base:
        return f"Re: {base}"[:900]
    return (f"[{ticket}] Re: {base}" if ticket else f"Re: {base}")[:900]


def thread_headers(parent_id: str | None, parent_refs: list[str]) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) of an answer to the message `parent_id` with `parent_refs`."""
    if not parent_id:
        return None, []
    refs = [r for r in parent_refs if r != parent_id] + [parent_id]
    if len(refs) > MAX_REFERENCES:  # keep the first (the thread's root) and the newest
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1):]
    return parent_id, refs


def compose(*, sender: str, sender_name: str, to: str, subject: str, body: str, domain: str,
            in_reply_to: str | None, references: list[str], auto: bool = False,
            now: datetime | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender))
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=domain)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join(references)
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(body)
    return msg


def acknowledgement(ticket: str, subject: str) -> str:
    return (f"Thank you for writing to us. We have received your message\n"
            f"\"{subject or '(no subject)'}\"\n"
            f"and opened ticket {ticket} for it. An agent will answer you soon.\n\n"
            f"To add to this conversation, reply to this message and keep [{ticket}] in the "
            f"subject.\n\nThis is an automatic message.\n")


def _send_sync(host: Smarthost, envelope_from: str, to: list[str], data: bytes) -> None:
    with smtplib.SMTP(host.host, host.port, timeout=host.timeout_s) as smtp:
        smtp.ehlo()
        if host.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if host.username:
            smtp.login(host.username, host.password or "")
        refused = smtp.sendmail(envelope_from, to, data)
        if refused:
            raise SendFailed(f"the smarthost refused {', '.join(refused)}")


async def send(host: Smarthost, envelope_from: str, to: list[str], msg: EmailMessage) -> bytes:
    """Hand the message to the smarthost (blocking smtplib in a worker thread); returns the bytes
    sent. Raises SendFailed with the reason."""
    data = msg.as_bytes()
    try:
        await asyncio.to_thread(_send_sync, host, envelope_from, to, data)
    except SendFailed:
        raise
    except smtplib.SMTPResponseException as e:
        err = e.smtp_error
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        raise SendFailed(f"the smarthost answered {e.smtp_code}: {text[:200]}") from None
    except (smtplib.SMTPException, OSError) as e:
        raise SendFailed(f"the smarthost could not be reached: {e}"[:300]) from None
    return data
