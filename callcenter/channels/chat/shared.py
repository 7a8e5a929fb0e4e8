"""Web chats when several processes form one center (issue 18, scaleout/).

A chat lives on one process, its owner: the widget's websocket and the chat's state are there.
What another process needs to take the chat over is shared:

- ``P chat:<id>``: the chat's snapshot (JSON: site, customer, state, agent, offer id, ...),
  written in order by one writer task after every transition, and only while this process still
  owns the chat (a Lua check), so a deposed owner never overwrites the new owner's snapshot;
- ``P chat:owners``: chat id -> the owning process;
- the messages (crm_core.chat.ChatLog, with their sequence numbers) and the routing contact (the
  Redis routing store): the truth about what was said and where the chat stands in the queue.

A process takes a chat over (`adopt`) when the customer's widget resumes on it (after its process
died, or behind a balancer that sent it elsewhere), and when the owner's heartbeat is gone (the
orphan sweep: a queued chat goes on being offered, an active one stays on the agent's console).
The previous owner, if alive, hears `chat moved` on the live channel and lets the chat go.
Resume tokens are HMACs under one secret shared in Redis, so any process can check them.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from callcenter.channels.chat.state import REPLAY_LIMIT, Chat
from callcenter.channels.chat.state import msg as _msg
from routing import ContactStatus

log = logging.getLogger(__name__)

_FIELDS = ("site", "customer_id", "name", "tier", "verified", "email", "state", "queue", "agent_id",
           "offer_id", "offer_expires", "ended_by", "wrapped_up", "surveyed", "transferred",
           "transcript_sent")
# save: KEYS owners, snapshot; ARGV chat id, me, snapshot JSON, ttl. Refused if another owns it.
_SAVE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4]))
return 1
"""
# claim: KEYS owners; ARGV chat id, expected owner ('' none), me
_CLAIM = """
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
# forget: KEYS owners, snapshot; ARGV chat id, me, ttl
_FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
"""
TTL_S = 86400


class SharedChats:
    def __init__(self, service: Any, client: Any, prefix: str, origin: str,
                 alive: Callable[[], Awaitable[set[str]]], publish: Callable[[dict[str, Any]], None],
                 sweep_s: float = 2.0) -> None:
        self.service, self.client, self.prefix, self.origin = service, client, prefix, origin
        self.alive, self.publish, self.sweep_s = alive, publish, sweep_s
        self.owners = f"{prefix}chat:owners"
        self._out: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue()
        self._adopting: dict[int, asyncio.Future[Chat | None]] = {}
        self.adopted = 0

    def key(self, iid: int) -> str:
        return f"{self.prefix}chat:{iid}"

    # ---- the snapshot -----------------------------------------------------------------------------
    def save(self, chat: Chat) -> None:
        """Queue the chat's snapshot (never blocks; written in order by `run`)."""
        snap = {k: getattr(chat, k) for k in _FIELDS}
        self._out.put_nowait(("save", chat.interaction_id, json.dumps(snap)))

    def forget(self, iid: int) -> None:
        self._out.put_nowait(("forget", iid, ""))

    async def _write(self, op: str, iid: int, data: str) -> None:
        if op == "save":
            await self.client.eval(_SAVE, 2, self.owners, self.key(iid), iid, self.origin, data, TTL_S)
        else:
            await self.client.eval(_FORGET, 2, self.owners, self.key(iid), iid, self.origin, 3600)

    async def run(self) -> None:
        """The writer and the orphan sweep."""
        sweep = asyncio.get_running_loop().create_task(self._sweep_forever())
        try:
            while True:
                op, iid, data = await self._out.get()
                for delay in (0.2, 0.5, 1.0, 2.0, 5.0):
                    try:
                        await self._write(op, iid, data)
                        break
                    except (RedisError, OSError) as e:
                        log.warning("chat %s: snapshot not written (%s); retrying", iid, e)
                        await asyncio.sleep(delay)
        finally:
            sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweep

    # ---- taking a chat over -----------------------------------------------------------------------
    async def claim(self, iid: int, expected: str) -> bool:
        return bool(await self.client.eval(_CLAIM, 1, self.owners, iid, expected, self.origin))

    async def owner(self, iid: int) -> str:
        raw = await self.client.hget(self.owners, iid)
        return raw.decode() if isinstance(raw, bytes) else (raw or "")

    async def adopt(self, iid: int, site: str | None = None, *, only_from: str | None = None) -> Chat | None:
        """Take the chat over (once at a time per chat on this process); None: unknown chat (or,
        with `only_from`, owned by another process than that one now)."""
        running = self._adopting.get(iid)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[Chat | None] = asyncio.get_running_loop().create_future()
        self._adopting[iid] = fut
        try:
            chat = await self._adopt(iid, site, only_from)
            fut.set_result(chat)
            return chat
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: a waiter re-raises it
            raise
        finally:
            del self._adopting[iid]

    async def _adopt(self, iid: int, site: str | None, only_from: str | None) -> Chat | None:
        svc = self.service
        if iid in svc.chats:
            return svc.chats[iid]
        if not await self.client.exists(self.key(iid)):
            return None
        for _ in range(5):
            previous = await self.owner(iid)
            if only_from is not None and previous != only_from:
                return None
            if await self.claim(iid, previous):
                break
        else:
            return None
        raw = await self.client.get(self.key(iid))
        if raw is None:
            return None
        snap = json.loads(raw)
        if site is not None and snap["site"] != site:
            return None
        if previous and previous != self.origin:  # the old owner, if alive, lets it go
            self.publish({"k": "chat", "moved": iid, "to": self.origin})
        chat = await self._rebuild(iid, snap)
        if iid in svc.chats:  # adopted meanwhile (never two copies here)
            return svc.chats[iid]
        svc.chats[iid] = chat
        self.adopted += 1
        self.save(chat)
        await svc._event(chat, "taken_over", process=self.origin, previous=previous or None, state=chat.state)
        await self._resume_agent(chat)
        if not chat.links and chat.state not in ("ended", "done"):
            svc._arm_gone(chat)  # the customer has `resume_s` to come back
        elif chat.state == "done":  # kept a while for a page reload, as the owner would have
            asyncio.get_running_loop().call_later(svc.options.resume_s, lambda: svc._drop(chat))
        if chat.state in ("queued", "offered"):
            svc._ensure_refresher()
        return chat

    async def _rebuild(self, iid: int, snap: dict[str, Any]) -> Chat:
        svc = self.service
        chat = Chat(iid, snap["site"], snap["customer_id"], snap["name"], tier=snap["tier"],
                    verified=bool(snap["verified"]), email=snap["email"])
        for k in ("queue", "ended_by", "offer_expires"):
            setattr(chat, k, snap.get(k))
        chat.queue = chat.queue or ""
        for k in ("wrapped_up", "surveyed", "transferred", "transcript_sent"):
            setattr(chat, k, bool(snap.get(k)))
        chat.token = svc._token(iid)
        messages = await svc.log.since(iid, 0, REPLAY_LIMIT)
        chat.next_seq = max(await svc.log.last_seq(iid), messages[-1].seq if messages else 0) + 1
        chat.client_seq = {m.client_id: m.seq for m in messages if m.client_id}
        rec = svc.runner.engine.store.contact(str(iid))
        status = rec.status if rec is not None else None
        if rec is not None:
            chat.queue = rec.queue or chat.queue
        if status is ContactStatus.WAITING:
            chat.state, chat.routed = "queued", True
        elif status is ContactStatus.OFFERED and rec is not None:
            chat.state, chat.routed, chat.agent_id = "offered", True, rec.agent_id
            same = snap.get("state") == "offered" and snap.get("agent_id") == rec.agent_id
            kept = snap.get("offer_id") if same else None
            chat.offer_id = kept or secrets.token_urlsafe(9)
            if not same or not chat.offer_expires:
                until = datetime.now(UTC) + timedelta(seconds=svc.options.accept_timeout_s)
                chat.offer_expires = until.isoformat()
        elif status is ContactStatus.CONNECTED and rec is not None:
            chat.state, chat.routed, chat.agent_id = "active", True, rec.agent_id
        elif snap.get("state") in ("new", "bot"):
            chat.state = "new"  # the bot's turn is lost with its process: straight to the queue
        elif snap.get("state") in ("active", "ended") and not chat.wrapped_up and snap.get("agent_id"):
            chat.state, chat.agent_id = "ended", snap["agent_id"]  # the agent still wraps up
            chat.ended_by = chat.ended_by or "agent"
        else:
            chat.state, chat.wrapped_up = "done", True
        return chat

    async def _resume_agent(self, chat: Chat) -> None:
        """The agent's console (on whichever process) hears of the chat again from its new owner."""
        svc = self.service
        if chat.state == "new":
            svc.spawn(svc._queue(chat, svc.options.queue, {}, 0.0))
            return
        agent = svc.directory.agents.get(chat.agent_id or "")
        if agent is None:
            return
        if chat.state == "offered" and chat.offer_id:
            delivered = svc.hub.send(agent.user_id, "chat_offer", **await svc.offer_message(chat))
            offer_id = chat.offer_id
            if delivered:
                svc.spawn(svc._accept_timeout(chat, offer_id))
            else:
                svc.spawn(svc._decline(chat, offer_id, no_answer=False, why="agent_disconnected"))
        elif chat.state == "active" or (chat.state == "ended" and not chat.wrapped_up):
            await svc._send_started(chat, agent.user_id)

    async def console_resume(self, user_id: int) -> None:
        """A console opened on another process: this process's chats of that agent go to it, on
        the live channel to every process (this one may not know yet where the console is)."""
        svc = self.service
        agent = svc.directory.by_user(user_id)
        if agent is None:
            return
        there = _Everywhere(self.publish, user_id)
        for chat in list(svc.chats.values()):
            if chat.agent_id != agent.agent_id:
                continue
            if chat.state == "offered" and chat.offer_id:
                there.put(_msg("chat_offer", **await svc.offer_message(chat)))
            elif chat.state == "active" or (chat.state == "ended" and not chat.wrapped_up):
                await svc._send_started(chat, user_id, there)

    def on_live(self, message: dict[str, Any]) -> None:
        """`chat moved`: another process took one of this process's chats over; let it go."""
        iid = message.get("moved")
        if not isinstance(iid, int) or message.get("to") == self.origin:
            return
        chat = self.service.chats.pop(iid, None)
        if chat is None:
            return
        chat.state = "done"  # its pending timers and tasks find nothing to do
        if chat.gone is not None:
            chat.gone.cancel()
            chat.gone = None
        for link in list(chat.links):  # its widget reconnects (to the new owner, or takes it back)
            link.chat = None
            if not link.closed:
                link.closed = True
                link.queue.put_nowait(None)
        chat.links.clear()
        log.info("chat %s moved to %s", iid, message.get("to"))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                pass
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("chat orphan sweep failed")

    async def sweep(self) -> int:
        """Chats whose owner's heartbeat is gone: taken over here (one process wins each)."""
        owners = await self.client.hgetall(self.owners)
        if not owners:
            return 0
        alive = await self.alive()
        n = 0
        for k, v in owners.items():
            iid = int(k)
            owner = v.decode() if isinstance(v, bytes) else v
            if owner in alive or owner == self.origin or iid in self.service.chats:
                continue
            if not await self.client.exists(self.key(iid)):  # its snapshot expired: nothing to take
                await self.client.eval(_FORGET, 2, self.owners, self.key(iid), iid, owner, 3600)
                continue
            if await self.adopt(iid, only_from=owner) is not None:
                n += 1
                log.info("chat %s: its process %s is gone; taken over", iid, owner)
        return n


class _Everywhere:
    """A console link's `put` for a console on some other process (the live channel)."""

    def __init__(self, publish: Callable[[dict[str, Any]], None], user_id: int) -> None:
        self.publish, self.user_id = publish, user_id

    def put(self, message: dict[str, Any]) -> None:
        self.publish({"k": "msg", "u": self.user_id, "m": message})


async def install(so: Any) -> SharedChats | None:
    """Scale-out (scaleout/setup.py): the chat service shares its chats; None if chat is off."""
    svc = so.center.chat
    if svc is None:
        return None
    client = so.client
    key = f"{so.prefix}chat:secret"
    await client.set(key, secrets.token_hex(32), nx=True)
    raw = await client.get(key)
    svc._secret = raw if isinstance(raw, bytes) else str(raw).encode()

    async def alive() -> set[str]:
        return {so.origin, *await so.others()}

    def publish(message: dict[str, Any]) -> None:
        so.live.publish(message)

    shared = SharedChats(svc, client, so.prefix, so.origin, alive, publish,
                         sweep_s=max(0.5, so.dead_after_s / 5))
    svc.shared = shared
    return shared

