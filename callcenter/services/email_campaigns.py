"""Email campaigns: a message to a segment through the email channel's smarthost.

    svc = EmailCampaigns(center, base_url="https://cc.example.com")
    sent = await svc.send_due(campaign_id)      # as many as the rate limit allows now
    await svc.unsubscribe(token)                # the recipient's link: honoured at once (DNC)
    (inbound hard bounces mark the address invalid: the email channel calls on_parsed)

Each recipient gets their own unsubscribe link (and List-Unsubscribe / List-Unsubscribe-Post
headers, RFC 8058), checked against the DNC list right before each send. Each message is an
outbound email interaction on the customer's timeline, stored like an agent's reply (its
Message-ID), so that the customer's answer threads back as an email contact on that conversation.
A delivery status notification (RFC 3464) that says a recipient failed permanently (5.x.x) adds
the address to the DNC list as `bounce`: no campaign writes to it again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from callcenter.channels.email import outbound
from crm_core import email as mail
from crm_core.campaigns import CampaignRecord, CampaignStore
from crm_core.errors import CrmError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- pure parts
@dataclass
class TokenBucket:
    """`rate_per_min` sends a minute, at most `burst` at once; times are the caller's seconds."""

    rate_per_min: float
    burst: int
    tokens: float = field(init=False)
    at: float | None = None

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float, want: int) -> int:
        if self.at is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate_per_min / 60.0)
        self.at = now
        n = min(want, int(self.tokens))
        self.tokens -= n
        return n


STATUS_RE = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}")


def hard_bounces(raw: bytes) -> list[str]:
    """Recipients a delivery status notification reports as failed for good (Action: failed,
    Status 5.x.x), lower-cased; [] for anything else."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if msg.get_content_type() != "multipart/report":
        return []
    out: list[str] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        if not blocks:  # some parsers keep it as text: split the per-recipient blocks ourselves
            text = part.get_payload(decode=True) or b""
            blocks = [
                BytesParser(policy=policy.default).parsebytes(b.strip() + b"\n\n")
                for b in re.split(rb"\r?\n\r?\n", text)
                if b.strip()
            ]
        for block in blocks:
            action = str(block.get("Action", "")).strip().lower()
            status = STATUS_RE.match(str(block.get("Status", "")))
            rcpt = str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
            addr = rcpt.split(";", 1)[-1].strip().lower()
            if action == "failed" and status and status.group(1) == "5" and "@" in addr:
                out.append(addr)
    return out


def personalise(text: str, rec: CampaignRecord) -> str:
    return text.replace("{name}", rec.name)


def campaign_message(
    *,
    sender: str,
    sender_name: str,
    domain: str,
    rec: CampaignRecord,
    subject: str,
    body: str,
    unsubscribe_url: str,
) -> EmailMessage:
    assert rec.email is not None
    msg = outbound.compose(
        sender=sender,
        sender_name=sender_name,
        to=rec.email,
        subject=personalise(subject, rec),
        body=personalise(body, rec) + f"\n\n--\nUnsubscribe: {unsubscribe_url}\n",
        domain=domain,
        in_reply_to=None,
        references=[],
    )
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    return msg


# ----------------------------------------------------------------------------- the service
class EmailCampaigns:
    def __init__(self, center: Any, *, base_url: str, mono: Callable[[], float] | None = None) -> None:
        import time

        self.center = center
        self.crm = center.store
        self.store = CampaignStore(center.store.db)
        self.base_url = base_url.rstrip("/")
        self.mono = mono or time.monotonic
        self.wall: Callable[[], float] = time.time  # the shared bucket's clock (scale-out)
        self.buckets: dict[int, TokenBucket] = {}

    @property
    def email(self) -> Any:
        svc = getattr(self.center, "email", None)
        if svc is None:
            raise CrmError("the email channel is not enabled")
        return svc

    def unsubscribe_url(self, rec: CampaignRecord) -> str:
        return f"{self.base_url}/campaigns/unsubscribe/{rec.token}"

    async def send_due(self, campaign_id: int) -> int:
        """Send to as many pending recipients as the campaign's rate allows now; returns how many
        were sent (unsubscribed and bounced addresses are excluded, never sent to)."""
        camp = await self.store.get(campaign_id)
        if camp.mode != "email" or camp.status != "running":
            return 0
        allowed = await self._allowance(camp)
        sent = 0
        for rec in await self.store.claim_due(camp.id, self.crm_now(), allowed):
            reason = await self.store.dnc("email", rec.email) if rec.email else "no_email"
            if reason is not None or await self.store.blacklisted(rec.customer_id):
                await self.store.settle(rec.id, status="excluded", last_outcome=reason or "blacklisted")
                await self.store.log_attempt(
                    camp.id, rec.id, "excluded", data={"reason": reason or "blacklisted"}
                )
                continue
            if await self._send(camp, rec):
                sent += 1
        return sent

    async def _allowance(self, camp: Any) -> int:
        """How many may go now. Several processes (scale-out): the bucket is in Redis, so the
        rate holds for the center; Redis away: this process's own bucket (logged)."""
        burst = max(1, camp.rate_per_min // 6)
        so = getattr(self.center, "scaleout", None)
        if so is not None:
            from redis.exceptions import RedisError

            from callcenter.api.ratelimit import take_shared

            try:
                granted, _wait = await take_shared(so.client, f"{so.prefix}mailrate:{camp.id}", self.wall(),
                                                   camp.rate_per_min / 60.0, burst, 1_000_000)
                return granted
            except (RedisError, OSError) as e:
                log.warning("email campaign %s: shared send rate unavailable (%s); this process's own",
                            camp.id, e)
        bucket = self.buckets.setdefault(camp.id, TokenBucket(camp.rate_per_min, burst))
        return bucket.take(self.mono(), 1_000_000)

    def crm_now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)

    async def _send(self, camp: Any, rec: CampaignRecord) -> bool:
        opts = self.email.options
        msg = campaign_message(
            sender=opts.address,
            sender_name=opts.display_name,
            domain=opts.domain,
            rec=rec,
            subject=camp.subject or "",
            body=camp.body or "",
            unsubscribe_url=self.unsubscribe_url(rec),
        )
        inter = await self.crm.open_interaction(
            "email",
            "outbound",
            rec.customer_id,
            to_address=rec.email,
            from_address=opts.address,
            events=(
                ("campaign_email", {"campaign_id": camp.id, "campaign": camp.name, "record_id": rec.id}),
            ),
        )
        error = None
        data = msg.as_bytes()
        try:
            data = await outbound.send(opts.smarthost, opts.address, [rec.email or ""], msg)
        except outbound.SendFailed as e:
            error = str(e)
        fields = {
            "message_id": str(msg["Message-ID"]),
            "subject": str(msg["Subject"]),
            "from_address": opts.address,
            "to_addresses": [rec.email],
            "text_body": msg.get_content(),
            "error": error,
        }
        eid = await mail.record_outbound(
            self.crm.db,
            interaction_id=inter.id,
            status="send_failed" if error else "sent",
            source="campaign",
            raw=data,
            fields=fields,
            event=(
                "campaign_sent",
                error is None,
                {"to": rec.email, "message_id": fields["message_id"], **({"error": error} if error else {})},
            ),
        )
        await mail.update_email(self.crm.db, eid, thread_id=eid)  # the conversation a reply joins
        await self.crm.set_state(inter.id, "failed" if error else "ended")
        await self.store.log_attempt(
            camp.id,
            rec.id,
            "failed" if error else "sent",
            interaction_id=inter.id,
            data={"error": error} if error else {},
        )
        await self.store.settle(
            rec.id,
            status="failed" if error else "done",
            attempts=rec.attempts + 1,
            last_outcome="failed" if error else "sent",
            interaction_id=inter.id,
        )
        return error is None

    async def unsubscribe(self, token: str) -> str | None:
        """The recipient's link: their address is on the DNC list from now on. Returns the address
        (None for an unknown token)."""
        try:
            rec = await self.store.record_by_token(token)
        except CrmError:
            return None
        if rec.email is None:
            return None
        await self.store.add_dnc("email", rec.email, "unsubscribe", campaign_id=rec.campaign_id)
        await self.store.log_attempt(
            rec.campaign_id, rec.id, "unsubscribed", interaction_id=rec.interaction_id
        )
        if rec.interaction_id is not None:
            await self.crm.append_event(
                rec.interaction_id, "campaign_unsubscribed", data={"email": rec.email}
            )
        if rec.status == "pending":
            await self.store.settle(rec.id, status="excluded", last_outcome="unsubscribe")
        return rec.email

    async def on_parsed(self, raw: bytes, parsed: Any) -> None:
        """The email channel's hook for every inbound message: a hard bounce marks the address."""
        for addr in hard_bounces(raw):  # [] unless a delivery status report
            try:
                if await self.store.add_dnc("email", addr, "bounce"):
                    log.info("hard bounce: %s is invalid from now on", addr)
            except CrmError:
                continue
