"""A chat's transcript as plain text, for the customer's email. Pure."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from crm_core.chat import StoredMessage

WHO = {"customer": "You", "bot": "Assistant", "system": "—"}


def transcript_text(messages: Iterable[StoredMessage], customer: str, started: datetime | None = None) -> str:
    """One line per message: time, who, text (as sent: this is plain text, never HTML)."""
    day = f" on {started:%Y-%m-%d}" if started else ""
    lines = [f"Your chat with us{day}, {customer}:", ""]
    for m in messages:
        who = (m.author or "Agent") if m.sender == "agent" else WHO.get(m.sender, m.sender)
        lines.append(f"[{m.at.strftime('%H:%M')} UTC] {who}: {m.body}")
    lines += ["", "Thank you for chatting with us.", ""]
    return "\n".join(lines)
