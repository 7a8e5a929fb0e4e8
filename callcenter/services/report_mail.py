"""The daily report summary by email (issue 16).

A supervisor subscribes (PUT /api/v1/reports/subscription) with an address and a time zone.
Once their local day is over, the next tick sends them the day's summary, scoped to their
teams: contacts, SL, ASA, AHT, abandonment, transfers, FCR and CSAT in total and per queue.
It goes out through the email channel's smarthost (callcenter/channels/email/outbound.py);
`last_day` records the local day sent, so a summary goes once even with several processes
(the row is claimed with a conditional UPDATE before sending). The clock is injected.
The daily customer snapshot is taken by one process of the center too (`claim`: in Redis with
scale-out; the snapshot itself skips a day already taken).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from crm_core import reports as R

log = logging.getLogger(__name__)
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
SEND_AFTER = timedelta(minutes=15)  # after local midnight: late contacts of the day have ended


async def get_subscription(db: Any, user_id: int) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT email, tz, last_day FROM report_subscriptions WHERE user_id = :u"),
                {"u": user_id},
            )
        ).first()
    if row is None:
        return {"subscribed": False}
    return {"subscribed": True, "email": row[0], "tz": row[1], "last_day": row[2]}


async def subscribe(db: Any, user_id: int, email: Any, tz: str) -> dict[str, Any]:
    if not isinstance(email, str) or not EMAIL_RE.match(email.strip()):
        raise ValueError("give a valid email address")
    R.Range(date.today(), date.today(), tz).check()  # a known time zone, or ReportError (a ValueError)
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM report_subscriptions WHERE user_id = :u"), {"u": user_id})
        await conn.execute(
            text(
                "INSERT INTO report_subscriptions (user_id, email, tz, last_day) VALUES (:u, :e, :tz, NULL)"
            ),
            {"u": user_id, "e": email.strip(), "tz": tz},
        )
    return await get_subscription(db, user_id)


async def unsubscribe(db: Any, user_id: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM report_subscriptions WHERE user_id = :u"), {"u": user_id})


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.1f} %" if pct else str(v)


def summary_text(day: date, tz: str, total: dict[str, Any] | None, queues: list[dict[str, Any]]) -> str:
    """The email's body (plain text): the day's figures, then one line per queue."""
    lines = [f"Contact center summary for {day.isoformat()} ({tz})", ""]
    if total is None:
        lines.append("No contacts.")
    else:
        lines += [
            f"Contacts: {total['contacts']}  offered: {total['offered']}  answered: {total['answered']}",
            f"Service level: {_fmt(total['service_level'], True)}  ASA: {_fmt(total['asa_s'])} s  "
            f"AHT: {_fmt(total['aht_s'])} s",
            f"Abandoned: {total['abandoned']} ({_fmt(total['abandon_rate'], True)}), "
            f"short abandons: {total['short_abandoned']}",
            f"Transfer rate: {_fmt(total['transfer_rate'], True)}  FCR: {_fmt(total['fcr_rate'], True)}  "
            f"CSAT: {_fmt(total['csat_avg'])} ({total['csat_responses']} responses)",
        ]
    if queues:
        lines += ["", "Per queue: contacts, SL, ASA (s), abandon rate"]
        lines += [
            f"  {q['key']}: {q['contacts']}, {_fmt(q['service_level'], True)}, {_fmt(q['asa_s'])}, "
            f"{_fmt(q['abandon_rate'], True)}"
            for q in queues
        ]
    lines += ["", "Definitions: docs/reports.md. To stop these emails, unsubscribe on the reports page."]
    return "\n".join(lines) + "\n"


async def _scope(store: Any, user_id: int) -> tuple[R.Scope | None, str]:
    u = await store.get_user(user_id)
    teams = tuple(t.name for t in u.teams) if hasattr(u, "teams") else ()
    if "admin" in (u.roles or []):
        return None, u.username
    owned = await store.queue_teams()
    return R.Scope(
        queues=frozenset(q for q, ts in owned.items() if set(ts) & set(teams)), teams=frozenset(teams)
    ), u.username


async def send_due(
    store: Any,
    settings: Any,
    *,
    now: datetime | None = None,
    force: bool = False,
    sender: Callable[..., Any] | None = None,
) -> int:
    """Send each subscriber whose local day ended (and who has not had it yet) that day's
    summary; `force`: yesterday's, now. Returns how many were sent."""
    from callcenter.channels.email import outbound

    now = now or datetime.now(UTC)
    db = store.db
    async with db.engine.connect() as conn:
        subs = (
            await conn.execute(text("SELECT user_id, email, tz, last_day FROM report_subscriptions"))
        ).all()
    e = settings.email
    host = outbound.Smarthost(
        e.smarthost_host, e.smarthost_port, e.smarthost_starttls, e.smarthost_username, e.smarthost_password
    )
    send = sender or outbound.send
    sent = 0
    for user_id, email, tz, last_day in subs:
        try:
            zone = R.Range(date.today(), date.today(), tz).zone()
        except R.ReportError:
            continue
        local = now.astimezone(zone)
        day = (local - SEND_AFTER).date() - timedelta(days=1)
        if not force and (last_day is not None and last_day >= day.isoformat()):
            continue
        async with db.engine.begin() as conn:  # claim it: one process sends it
            claimed = await conn.execute(
                text(
                    "UPDATE report_subscriptions SET last_day = :d WHERE user_id = :u AND "
                    "(last_day IS NULL OR last_day < :d OR :force)"
                ),
                {"d": day.isoformat(), "u": user_id, "force": force},
            )
        if not claimed.rowcount:
            continue
        try:
            scope, username = await _scope(store, user_id)
            rng = R.Range(day, day, tz, "day")
            total = (await R.contact_report(db, rng, scope=scope, totals=True))["rows"]
            queues = (await R.contact_report(db, rng, by="queue", scope=scope, totals=True))["rows"]
            body = summary_text(day, tz, total[0] if total else None, queues)
            msg = outbound.compose(
                sender=e.address,
                sender_name=e.display_name,
                to=email,
                subject=f"Daily summary {day.isoformat()}",
                body=body,
                domain=e.address.rsplit("@", 1)[-1],
                in_reply_to=None,
                references=[],
                auto=True,
                now=now,
            )
            await send(host, e.address, [email], msg)
            sent += 1
            log.info("daily summary %s sent to %s (%s)", day, username, email)
        except Exception:  # noqa: BLE001 - one failure must not stop the others; tried again next day
            log.exception("daily summary %s to user %s failed", day, user_id)
            async with db.engine.begin() as conn:  # not sent: try again on the next tick
                await conn.execute(
                    text("UPDATE report_subscriptions SET last_day = :p WHERE user_id = :u"),
                    {"p": last_day, "u": user_id},
                )
    return sent


async def run_daily(
    store: Any,
    settings: Any,
    utc: Callable[[], datetime],
    every_s: float = 60.0,
    stop: asyncio.Event | None = None,
    claim: Callable[[str, float], Awaitable[bool]] | None = None,
) -> None:
    """Tick every `every_s`: send the summaries that are due. Also snapshots the customers once a
    UTC day (the movement report's data); with several processes only the one that claims the
    day does (`claim(key, ttl_s)`; the others try again later, in case it died)."""
    stop = stop or asyncio.Event()
    snap_day = None
    while not stop.is_set():
        try:  # the first tick too waits: nothing here is urgent, and a starting center is busy
            await asyncio.wait_for(stop.wait(), every_s)
            break
        except TimeoutError:
            pass
        now = utc()
        try:
            await send_due(store, settings, now=now)
            if snap_day != now.date() and (
                claim is None or await claim(f"snapshot:{now.date().isoformat()}", 600.0)
            ):
                await R.snapshot_customers(store.db, now, once=True)
                snap_day = now.date()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("daily reports tick failed")
