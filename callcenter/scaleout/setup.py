"""Several processes form one center (issue 18, docs/deploy.md). With `scaleout.enabled` and Redis:

- Routing runs on the Redis store (callcenter/routing_redis.py), shared by every process, on one
  time base (wall-clock seconds).
- Exactly one process holds the AMI connection, through the leader lease ``ami`` (lease.py). The
  new leader raises the database fence (cc_fence ``ami``) to its token first, so a deposed
  leader's fenced writes are refused; AMI events it forwards carry its token and a receiver
  refuses events from an older token. On takeover the AMI client resyncs and every process
  is told which calls are still live: calls that ended meanwhile are completed.
- A call belongs to the process whose FastAGI session took it. Routing decisions about a contact
  that another process owns, and AMI events of its call, go to the other processes' work streams
  (``P work:<process>``: Redis Streams, one consumer group per process, acknowledged after they
  are handled); the owner performs them, the others drop them.
- Live state for consoles fans out to every process (fanout.py): a message for a user goes to
  the process(es) holding that user's console. Console actions on a call another process owns
  (ack_offer, submit_wrapup, hold, ...) are sent there and its answer comes back.
- Every process runs an outbox worker (outbox.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import pickle
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from callcenter.keys import CENTER, DB, REDIS, SETTINGS, TELEPHONY
from callcenter.scaleout.fanout import LiveBus
from callcenter.scaleout.outbox import Outbox, OutboxWorker
from crm_core.fencing import StaleToken

log = logging.getLogger(__name__)
SCALEOUT = web.AppKey("scaleout", object)
ORDERED_WORK = frozenset({b"decisions", b"ami", b"handover", "decisions", "ami", "handover"})
# console messages about a contact: when this process does not know the contact, its owner may
# (a call belongs to the process of its FastAGI session, a chat to the one holding the widget, a
# mail to the one that took it over SMTP; the agent's console may be on any process)
CALL_MESSAGES = frozenset({"ack_offer", "decline_offer", "submit_wrapup", "answer", "hangup", "hold",
                           "retrieve", "transfer", "recording", "consult", "consult_complete",
                           "consult_cancel", "consult_conference", "conference_leave", "escalate",
                           "chat_accept", "chat_decline", "chat_send", "chat_typing", "chat_seen",
                           "chat_end", "chat_wrapup", "chat_transfer", "chat_escalate",
                           "email_accept", "email_reply", "email_done",
                           # a progressive/predictive campaign's agents are on the process dialing it
                           "campaign_join", "campaign_leave", "campaign_disposition"})


def routing_store(settings: Any) -> Any:
    """A factory for Center(routing_store=...): the Redis store under `<prefix>rt:`."""
    from callcenter.routing_redis import RedisStore

    def make(config: Any) -> Any:
        return RedisStore.from_url(settings.redis.url, prefix=f"{settings.redis.prefix}rt:",
                                   rules=config.mixing)

    return make


class ScaleOut:
    def __init__(self, app: web.Application) -> None:
        s = app[SETTINGS]
        self.app = app
        self.settings = s
        self.prefix = s.redis.prefix
        self.client = app[REDIS]
        # blocking reads (XREADGROUP BLOCK, BLPOP) on their own connections, closed at shutdown
        import redis.asyncio as aioredis

        # (a blocking pool: a burst of console actions forwarded at once waits for a connection
        # instead of failing with MaxConnectionsError)
        self.bclient = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            s.redis.url, socket_timeout=None, max_connections=1000, timeout=10))
        self.center = app[CENTER]
        self.tel = app[TELEPHONY]
        self.origin = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.procs_key = f"{self.prefix}procs"
        self.live = LiveBus(self.client, self.prefix, self.origin, self._on_live, self._resync_live)
        self.remote_users: dict[int, set[str]] = {}  # user id -> processes holding a console
        self.elector: Any = None  # lease_thread.ThreadedElector, with the AMI enabled
        self.ami_token = 0  # this process's token while it holds the AMI lease
        self.seen_token = 0  # the newest AMI leader token seen on forwarded events
        self.refused_stale = 0
        self.outbox = Outbox(self.client, self.prefix, s.scaleout.outbox_partitions)
        self.outbox_worker = OutboxWorker(self.outbox, app[DB], self.origin,
                                          lease_ttl_s=s.scaleout.lease_ttl_s, reader=self.bclient)
        self.forwarded = 0
        self.backlog = 0  # outbox entries not written yet (read at every heartbeat)
        self.alive = 1  # processes of the center with a fresh heartbeat, this one included
        self.dead_after_s = s.scaleout.dead_after_s  # a process whose heartbeat is older is dead
        self._tasks: list[asyncio.Task[Any]] = []
        # work for the other processes: ONE sender task drains this queue in pipelined batches, so
        # a burst (2,000 consoles signing in, an AMI event storm) takes one Redis connection, not
        # one per event (the pool's limit: MaxConnectionsError), and AMI events keep their order
        self._work_out: asyncio.Queue[tuple[str, bytes, asyncio.Future[int] | None]] = asyncio.Queue()
        self._sender: asyncio.Task[Any] | None = None
        self.lclient: Any = None  # the AMI lease's own connection (renewals never wait on the pool)
        self._chains: dict[int, asyncio.Task[Any]] = {}  # user -> their last forwarded console action
        self._ordered: asyncio.Queue[dict[Any, Any]] = asyncio.Queue()  # see _work_ordered
        self.chats: Any = None  # channels/chat/shared.py, when web chat is on

    # ---- start / stop ---------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        hub = self.center.hub
        hub.remote = self
        self.center.scaleout = self  # services take leases and claims through it (campaigns, sla, ...)
        self.center.forward = self.forward_decisions
        self.center.forward_console = self.forward_console
        self.tel.forward = self.forward_event
        self.ami_proxy = AmiProxy(self)
        self.center.on_console_connect.append(self._resume_elsewhere)
        self.tel.voice.ami = self.ami_proxy  # call controls go to the AMI leader until this one leads
        self.tel.voice.adopt = self._adopt_call  # an after-dial AGI for another process's call
        from callcenter.scaleout.buffered import BufferedWrites

        self.buffer = BufferedWrites(self.center.store, self.outbox)  # interaction writes survive
        self.buffer.install()  # a database outage (through the outbox)
        await self._heartbeat_once()
        spawn = [self.live.run(), self._heartbeat(), self._work(), self.outbox_worker.run()]
        from callcenter.channels.chat.shared import install as share_chats

        self.chats = await share_chats(self)  # web chats any process can take over
        if self.chats is not None:
            spawn.append(self.chats.run())
        s = self.settings
        if s.ami.enabled:  # the lease is renewed from its own thread (lease_thread.py)
            from callcenter.scaleout.lease_thread import ThreadedElector

            self.elector = ThreadedElector(s.redis.url, self.prefix, "ami", self.origin,
                                           s.scaleout.lease_ttl_s, on_elected=self._elected,
                                           on_lost=self._deposed, floor=self._db_floor)
            spawn.append(self.elector.run())
        self._tasks = [loop.create_task(c) for c in spawn]
        self._sender = loop.create_task(self._send_work())
        self._tasks.append(loop.create_task(self._work_ordered()))
        self._tasks.append(self._sender)
        board = getattr(self.center, "wallboard", None)
        if board is not None:  # every process's wallboard applies every process's events
            board.fanout = lambda rows: self.live.publish({"k": "wb", "e": rows})
            board.claim_alert = self._claim_alert
        self.live.publish({"k": "hello"})
        from callcenter.ops import REGISTRY

        if REGISTRY in self.app:
            self.app[REGISTRY].register(_Metrics(self))

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        await self.bclient.connection_pool.disconnect()  # ends any read still blocked
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=3.0)
            for t in stuck:  # never hold the shutdown up
                log.warning("scale-out task did not stop: %r", t)
        with contextlib.suppress(Exception):
            await self.bclient.aclose()
        if self.lclient is not None:
            with contextlib.suppress(Exception):
                await self.lclient.aclose()
        aclose = getattr(self.center.engine.store, "aclose", None)
        if aclose is not None:  # the routing store's asyncio client (the event loop's reads)
            await aclose()
        with contextlib.suppress(RedisError, OSError):
            await self.client.hdel(self.procs_key, self.origin)

    # ---- processes ------------------------------------------------------------------------------
    async def _heartbeat_once(self) -> None:
        await self.client.hset(self.procs_key, self.origin, repr(time.time()))

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self._heartbeat_once()
                await self._publish_calls()
                self.backlog = await self.outbox.backlog()
                alive = set(await self.others())
                self.alive = len(alive) + 1
                for holders in self.remote_users.values():
                    holders &= alive  # consoles of dead processes are gone
                if self.ami_token:
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except StaleToken:  # a newer leader has written: this one steps down
                if self.elector is not None and self.elector.leader:
                    await self.elector._lose("a newer token reached the database")
            except (RedisError, OSError):
                pass
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.exception("scale-out heartbeat failed")
            await asyncio.sleep(self.dead_after_s / 5)

    async def _publish_calls(self) -> None:
        """`P calls:<process>`: linkedid -> interaction id of the calls this process holds."""
        key = f"{self.prefix}calls:{self.origin}"
        calls = {lid: str(c.interaction_id) for lid, c in self.center.voice.by_linkedid.items()}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if calls:
                pipe.hset(key, mapping=calls)
            await pipe.execute()

    async def sweep(self) -> int:
        """The AMI leader completes the calls of dead processes once the PBX no longer has them
        (a call the PBX moved to its fallback queue is taken over by the fallback logging)."""
        from crm_core.fencing import fenced_write
        from routing import ContactFinished, ContactHungUp
        from routing.errors import RoutingError

        async def noop(_s: Any) -> None:
            return None

        # only while this process's token is the newest the database has seen (StaleToken else)
        await fenced_write(self.app[DB], "ami", self.ami_token, noop)
        now, done = time.time(), 0
        store, voice = self.center.store, self.center.voice
        for k, v in (await self.client.hgetall(self.procs_key)).items():
            origin = k.decode() if isinstance(k, bytes) else k
            if origin == self.origin or now - float(v) < self.dead_after_s:
                continue
            key = f"{self.prefix}calls:{origin}"
            calls = await self.client.hgetall(key)
            for lid_b, iid_b in calls.items():
                lid, iid = lid_b.decode(), int(iid_b)
                live = self.tel.tracker.calls.get(lid)
                if live is not None and not live.ended and lid not in voice._fallback:
                    continue  # still up in the PBX: wait for its end (or its fallback queue)
                i = await store.get_interaction(iid)
                if i.state not in ("wrapup_done", "abandoned", "failed") and lid not in voice._fallback:
                    await store.append_event(iid, "owner_lost", ok=False, data={
                        "process": origin, "state": i.state,
                        "detail": "the process that held the call died; completed by the leader"})
                    if i.state == "answered":
                        await store.set_state(iid, "ended")
                    if i.state in ("answered", "ended"):
                        await store.set_state(iid, "wrapup_done")
                    else:
                        await store.set_state(iid, "abandoned")
                    done += 1
                try:  # free the agent's slot (or the waiting contact) in the shared routing store
                    if i.agent_id is not None and i.state in ("answered", "ended"):
                        await self.center.runner.handle(ContactFinished(str(iid), str(i.agent_id), 0.0))
                    else:
                        await self.center.runner.handle(ContactHungUp(str(iid)))
                except RoutingError:
                    pass
                await self.client.hdel(key, lid)
            if not await self.client.hlen(key):
                await self.client.hdel(self.procs_key, origin)
                await self.client.delete(self._stream(origin))
                log.info("process %s is gone; its calls are completed", origin)
        return done

    async def others(self) -> list[str]:
        now = time.time()
        procs = await self.client.hgetall(self.procs_key)
        out = []
        for k, v in procs.items():
            name = k.decode() if isinstance(k, bytes) else k
            if name != self.origin and now - float(v) < self.dead_after_s:
                out.append(name)
        return out

    # ---- the AMI lease --------------------------------------------------------------------------
    async def _db_floor(self) -> int:
        from crm_core.fencing import fence_token

        try:
            return await fence_token(self.app[DB], "ami")
        except Exception:  # noqa: BLE001 - the database is down: Redis's counter alone
            return 0

    async def _elected(self, token: int) -> None:
        from crm_core.fencing import fenced_write

        async def noop(_s: Any) -> None:
            return None

        try:  # raise the fence first: the deposed leader's fenced writes are refused from now on
            await fenced_write(self.app[DB], "ami", token, noop)
        except Exception:  # noqa: BLE001 - database down: the token still travels with events
            log.warning("could not raise the AMI fence to %d", token, exc_info=True)
        self.ami_token = self.seen_token = token
        a = self.settings.ami
        await self.tel.start_ami(a.host, a.port, a.username, a.resolved_secret() or "")

    async def _deposed(self) -> None:
        self.ami_token = 0
        tel = self.tel
        if tel.ami is not None:
            await tel.ami.close()
        if tel._pump is not None:
            tel._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tel._pump
        tel.ami, tel._pump, tel.sync = None, None, None
        tel.voice.ami = self.ami_proxy

    # ---- console fan-out (ConsoleHub.remote) ----------------------------------------------------
    def send(self, user_id: int, msg: dict[str, Any]) -> int:
        holders = self.remote_users.get(user_id)
        if holders:
            self.live.publish({"k": "msg", "u": user_id, "m": msg})
        return len(holders or ())

    def connected(self, user_id: int) -> bool:
        return bool(self.remote_users.get(user_id))

    def links_changed(self, user_id: int, connected: bool) -> None:
        self.live.publish({"k": "links", "u": user_id, "on": connected})

    def _on_live(self, msg: dict[str, Any]) -> None:
        kind = msg.get("k")
        if kind == "msg":
            self.center.hub.deliver(int(msg["u"]), msg["m"])
        elif kind == "links":
            holders = self.remote_users.setdefault(int(msg["u"]), set())
            (holders.add if msg["on"] else holders.discard)(str(msg["from"]))
        elif kind == "hello":
            self._announce()
        elif kind == "wb":
            board = getattr(self.center, "wallboard", None)
            if board is not None:
                board.receive(msg["e"])
        elif kind == "chat" and self.chats is not None:
            self.chats.on_live(msg)

    async def claim_once(self, key: str, ttl_s: float = 60.0) -> bool:
        """True for the one process of the center that claims `key` first (for `ttl_s`); Redis
        away: True (the work is done by each process rather than by none)."""
        try:
            return bool(await self.client.set(f"{self.prefix}once:{key}", self.origin, nx=True,
                                              px=max(1, int(ttl_s * 1000))))
        except (RedisError, OSError):
            return True

    async def _claim_alert(self, key: str) -> bool:
        """A wallboard alert is stored and sent once for the center: by the process that claims
        its condition first (the claim lasts a minute; Redis away: every process stores it)."""
        try:
            return bool(await self.client.set(f"{self.prefix}wbalert:{key}", self.origin, nx=True, ex=60))
        except (RedisError, OSError):
            return True

    def _announce(self) -> None:
        for user_id in self.center.hub.local_users():
            self.live.publish({"k": "links", "u": user_id, "on": True})

    async def _resync_live(self) -> None:
        """After a gap on the live channel: who holds which console, and every agent's state."""
        self.remote_users.clear()
        self.live.publish({"k": "hello"})
        self._announce()
        board = getattr(self.center, "wallboard", None)
        if board is not None:  # events missed during the gap: today's figures again
            self._spawn(board.rebuild())
        directory = self.center.directory
        for user_id in self.center.hub.local_users():
            agent = directory.by_user(user_id)
            if agent is not None:
                directory.push_state(agent.agent_id)

    # ---- work for another process ---------------------------------------------------------------
    def _stream(self, origin: str) -> str:
        return f"{self.prefix}work:{origin}"

    async def _broadcast(self, kind: str, payload: Any) -> int:
        """Send work to every other process; returns how many got it (raises if Redis failed)."""
        if self._sender is None or self._sender.done():  # not started (or stopping): directly
            return await self._xadd_batch([(kind, pickle.dumps(payload), None)])
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._work_out.put_nowait((kind, pickle.dumps(payload), fut))
        return await fut

    def _post(self, kind: str, payload: Any) -> None:
        """As _broadcast, without waiting (AMI events: sent in order by the one sender)."""
        if self._sender is None or self._sender.done():
            self._spawn(self._broadcast(kind, payload))
        else:
            self._work_out.put_nowait((kind, pickle.dumps(payload), None))

    async def _xadd_batch(self, batch: list[tuple[str, bytes, asyncio.Future[int] | None]]) -> int:
        others = await self.others()
        if others:
            async with self.client.pipeline(transaction=False) as pipe:
                for kind, data, _f in batch:
                    for o in others:
                        pipe.xadd(self._stream(o), {"k": kind, "p": data}, maxlen=100_000, approximate=True)
                await pipe.execute()
        self.forwarded += len(batch)
        return len(others)

    async def _send_work(self) -> None:
        while True:
            batch = [await self._work_out.get()]
            while len(batch) < 500 and not self._work_out.empty():
                batch.append(self._work_out.get_nowait())
            try:
                n = await self._xadd_batch(batch)
            except asyncio.CancelledError:
                for _k, _d, f in batch:
                    if f is not None and not f.done():
                        f.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - each waiter sees the error (Redis away)
                if not any(f is not None for _k, _d, f in batch):
                    log.warning("could not forward %d work items (%s)", len(batch), e)
                for _k, _d, f in batch:
                    if f is not None and not f.done():
                        f.set_exception(e)
                continue
            for _k, _d, f in batch:
                if f is not None and not f.done():
                    f.set_result(n)

    def _local_contact(self, cid: str | None) -> bool:
        voice = self.center.voice
        return cid is None or (cid.isdigit() and int(cid) in voice.calls)

    async def forward_decisions(self, decisions: Sequence[Any]) -> None:
        """Center._perform: decisions about contacts this process does not hold go to the others."""
        foreign = [d for d in decisions if not self._local_contact(getattr(d, "contact_id", None))]
        if foreign:
            try:
                await self._broadcast("decisions", foreign)
            except (RedisError, OSError):
                log.warning("could not forward %d routing decisions", len(foreign), exc_info=True)

    def forward_event(self, ev: Any) -> None:
        """Telephony._read (the AMI leader): events of calls this process does not hold go to the
        others; after a resync, which calls are still live (each process completes the rest)."""
        from callcenter.asterisk.ami_client import LocalEvent

        if isinstance(ev, LocalEvent):
            if ev.name == "Resynced":
                live = ",".join(sorted(self.tel.tracker.calls))
                self._post("ami", (self.ami_token, _Resynced(live)))
            return
        if (ev.get("Linkedid") or "") in self.center.voice.by_linkedid:
            return
        self._post("ami", (self.ami_token, ev))

    def _in_order(self, key: int | None, coro: Any) -> None:
        """Run a forwarded request in its own task, after the earlier ones of the same `key` (one
        user's console actions keep their order). The work stream is read by one loop: a console
        action awaited there (its database writes) held up every other one behind it, and under
        load the acks came after the offers' timeouts (offers withdrawn, agents set not-ready)."""
        prev = self._chains.get(key) if key is not None else None

        async def run() -> None:
            if prev is not None and not prev.done():
                await asyncio.wait([prev])
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad request must not stop the others
                log.exception("forwarded request failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.append(task)
        if key is not None:
            self._chains[key] = task

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.remove(t)
            if key is not None and self._chains.get(key) is t:
                del self._chains[key]
        task.add_done_callback(done)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _work(self) -> None:
        stream, group = self._stream(self.origin), "g"
        delay = 0.2
        while True:
            try:
                with contextlib.suppress(Exception):
                    await self.client.xgroup_create(stream, group, id="0", mkstream=True)
                got = await self.bclient.xreadgroup(group, self.origin, {stream: ">"}, count=100,
                                                    block=1000)
                for _s, entries in got or ():
                    for _entry_id, fields in entries:
                        kind = fields.get(b"k") or fields.get("k") or b""
                        if kind in ORDERED_WORK:  # in order, by _work_ordered: never held up here
                            self._ordered.put_nowait(fields)
                            continue
                        try:
                            await self._handle_work(fields)
                        except asyncio.CancelledError:
                            raise
                        except Exception:  # noqa: BLE001 - one bad entry must not stop the stream
                            log.exception("forwarded work failed")
                    if entries:  # handled (or, for console and AMI requests, started): one trip
                        ids = [entry_id for entry_id, _f in entries]
                        async with self.client.pipeline(transaction=False) as pipe:
                            pipe.xack(stream, group, *ids)
                            pipe.xdel(stream, *ids)
                            await pipe.execute()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                log.warning("work stream unavailable (%s); retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _work_ordered(self) -> None:
        """Routing decisions, AMI events and call handovers from the other processes, in the order
        sent (performing an offer waits on the database: console actions read from the same stream
        used to wait behind them, and came after the offers' timeouts)."""
        while True:
            fields = await self._ordered.get()
            try:
                await self._handle_work(fields)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad entry must not stop the others
                log.exception("forwarded work failed")

    async def _handle_work(self, fields: dict[Any, Any]) -> None:
        kind = (fields.get(b"k") or fields.get("k") or b"").decode()
        payload = pickle.loads(fields.get(b"p") or fields.get("p"))  # noqa: S301 - our own Redis
        center = self.center
        if kind == "decisions":
            mine = list(payload)  # each performer (voice, chat, email) acts only on its own contacts
            if mine:
                async with center.runner._lock:  # as for the local decisions
                    touched: set[str] = set()
                    for performer in center.performers:
                        touched |= await performer.perform(mine)
                for agent_id in touched:
                    center.directory.push_state(agent_id)
        elif kind == "ami":
            token, ev = payload
            if token < self.seen_token:
                self.refused_stale += 1
                log.warning("AMI event from a deposed leader (token %d < %d) refused", token,
                            self.seen_token)
                return
            self.seen_token = token
            if ev.name == "Resynced":
                live = set(ev.get("Live", "").split(",")) - {""}
                await center.voice.ami_resynced(live)
                return
            key = ev.get("Linkedid") or ""
            if key in center.voice.by_linkedid:
                self.tel._lane(key).append(ev)
        elif kind == "console":  # each in its own task, a user's in order (see _in_order)
            self._in_order(int(payload[0]["id"]), self._console_request(payload))
        elif kind == "ami_action":  # its requester waits for the answer: no order to keep
            self._in_order(None, self._ami_request(payload))
        elif kind == "resume":
            self._resume(int(payload))
        elif kind == "handover":
            await self._handover(payload)

    # ---- an after-dial AGI session for a call another process holds (voice_resume.py) ------------
    async def _adopt_call(self, session: Any, iid: int, status: str) -> bool:
        from callcenter.services.voice_resume import continue_call

        return await continue_call(self.center.voice, session, iid, status, self.handover_call)

    async def handover_call(self, iid: int, linkedid: str) -> dict[str, Any] | None:
        """Ask the live processes for the call (its holder hands it over and forgets it); the
        calls lists of every other process lose it (the leader's sweep must not complete it)."""
        reply = f"{self.prefix}reply:{uuid.uuid4().hex}"
        n = await self._broadcast("handover", (iid, reply))
        snap, deadline = None, time.monotonic() + 3.0
        for _ in range(n):
            left = deadline - time.monotonic()
            got = await self.bclient.blpop([reply], timeout=max(1, int(left))) if left > 0 else None
            if got is None:
                break
            snap = snap or pickle.loads(got[1])  # noqa: S301 - our own Redis
        for k in await self.client.hkeys(self.procs_key):
            origin = k.decode() if isinstance(k, bytes) else k
            if origin != self.origin:
                await self.client.hdel(f"{self.prefix}calls:{origin}", linkedid)
        await self.client.delete(reply)
        return snap

    async def _handover(self, payload: Any) -> None:
        from callcenter.services.voice_resume import release

        iid, reply = payload
        snap = release(self.center.voice, int(iid))
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(reply, pickle.dumps(snap))
            pipe.expire(reply, 30)
            await pipe.execute()

    # ---- console actions on another process's call ----------------------------------------------
    async def forward_console(self, user: Any, message: dict[str, Any], refused: Exception) -> Any:
        """Center.console_message: `refused` (not_found) here; the call's owner may know it."""
        from callcenter.facade import MessageRefused

        if message.get("type") not in CALL_MESSAGES:
            raise refused
        reply = f"{self.prefix}reply:{uuid.uuid4().hex}"
        n = await self._broadcast("console", (dataclasses.asdict(user), message, reply))
        deadline = time.monotonic() + 5.0
        last: dict[str, Any] | None = None
        for _ in range(n):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = await self.bclient.blpop([reply], timeout=max(1, int(left)))
            if got is None:
                break
            answer = json.loads(got[1])
            if answer["ok"]:
                await self.client.delete(reply)
                return answer["r"]
            if answer["code"] != "not_found":
                last = answer
        if last is not None:
            raise MessageRefused(last["code"], last["message"])
        raise refused

    async def _resume_elsewhere(self, user: Any, _link: Any) -> None:
        """A console opened here while its agent's call is held by another process: that
        process sends the call's state again (through the fan-out)."""
        agent = self.center.directory.by_user(user.id)
        if agent is not None and self.center.voice.current_for(agent.agent_id) is None:
            with contextlib.suppress(RedisError, OSError):
                await self._broadcast("resume", user.id)

    def _resume(self, user_id: int) -> None:
        center = self.center
        if self.chats is not None:  # this process's chats of that agent
            self._spawn(self.chats.console_resume(user_id))
        agent = center.directory.by_user(user_id)
        call = center.voice.current_for(agent.agent_id) if agent is not None else None
        if call is None:
            return
        from callcenter.facade import PROTOCOL_VERSION

        def send(type_: str, **fields: Any) -> None:  # to every process: the console just opened
            self.live.publish({"k": "msg", "u": user_id, "m": {"type": type_, "v": PROTOCOL_VERSION,
                                                               **fields}})
        offer = call.offer
        if offer is not None and not offer.settled and call.state in ("offered", "ringing") \
                and getattr(offer, "message", None):
            send("offer", **offer.message)
        if call.state in ("ringing", "talking", "held"):
            send("contact_state", interaction_id=call.interaction_id, state=call.state, at=call.state_at)
        elif call.state == "wrapup":
            send("contact_state", interaction_id=call.interaction_id, state="ended", at=call.state_at)
            send("wrapup", interaction_id=call.interaction_id, required={"disposition": True, "notes": True},
                 until=call.wrapup_until)

    async def _ami_request(self, payload: Any) -> None:
        """On the AMI leader: one action for another process, sent once (never replayed)."""
        action, fields, kwargs, timeout, reply = payload
        try:
            if self.tel.ami is None:
                raise ConnectionError("this process does not hold the AMI connection")
            answer: Any = ("ok", await self.tel.ami.send_action(action, fields, timeout=timeout, **kwargs))
        except Exception as e:  # noqa: BLE001 - the requester raises it
            answer = ("error", f"{type(e).__name__}: {e}")
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(reply, pickle.dumps(answer))
            pipe.expire(reply, 30)
            await pipe.execute()

    async def leader_origin(self) -> str | None:
        owner = await self.client.hget(f"{self.prefix}lease:ami", "owner")
        return owner.decode() if isinstance(owner, bytes) else owner

    async def _console_request(self, payload: Any) -> None:
        from callcenter.facade import MessageRefused, WebUser

        user_d, message, reply = payload
        user = WebUser(**{**user_d, "roles": tuple(user_d["roles"]), "teams": tuple(user_d["teams"])})
        try:
            answer = {"ok": True, "r": await self.center.console.handle(user, message)}
        except MessageRefused as e:
            answer = {"ok": False, "code": e.code, "message": str(e)}
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(reply, json.dumps(answer, default=str))
            pipe.expire(reply, 30)
            await pipe.execute()


class AmiProxyError(ConnectionError):
    """An AMI action sent through the leader failed: not sent, refused, or no answer in time."""


class AmiProxy:
    """`send_action` for a process without the AMI connection: the action goes to the leader's
    work stream, is sent there once, and the result comes back. No answer in time: it fails
    (the caller sees "the PBX did not answer"); it is never sent again."""

    def __init__(self, so: ScaleOut, wait_s: float = 10.0) -> None:
        self.so, self.wait_s = so, wait_s

    async def send_action(self, action: Any, fields: Any = None, *, timeout: float | None = None,
                          check: bool = False, **kwargs: Any) -> Any:
        so = self.so
        if so.tel.ami is not None:  # this process leads now
            return await so.tel.ami.send_action(action, fields, timeout=timeout, check=check, **kwargs)
        leader = await so.leader_origin()
        if leader is None or leader == so.origin:
            raise AmiProxyError("no process holds the AMI connection")
        reply = f"{so.prefix}reply:{uuid.uuid4().hex}"
        await so.client.xadd(so._stream(leader), {"k": "ami_action", "p": pickle.dumps(
            (action, fields, kwargs, timeout, reply))}, maxlen=100_000, approximate=True)
        got = await so.bclient.blpop([reply], timeout=max(1, int(self.wait_s)))
        if got is None:
            raise AmiProxyError("the AMI leader did not answer in time")
        kind, value = pickle.loads(got[1])  # noqa: S301 - our own Redis
        if kind != "ok":
            raise AmiProxyError(value)
        if check and not value.ok:
            from callcenter.asterisk.ami_client import AMIActionError

            raise AMIActionError(value)
        return value


@dataclasses.dataclass(frozen=True)
class _Resynced:
    live: str
    name: str = "Resynced"

    def get(self, key: str, default: str = "") -> str:
        return self.live if key == "Live" else default


async def scaleout_ctx(app: web.Application) -> AsyncIterator[None]:
    so = ScaleOut(app)
    app[SCALEOUT] = so
    await so.start()
    yield
    await so.close()


class _Metrics:
    """Prometheus: `cc_scaleout_*` (docs/deploy.md lists the alerts to set on them)."""

    def __init__(self, so: ScaleOut) -> None:
        self.so = so

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        so, w = self.so, self.so.outbox_worker
        yield GaugeMetricFamily("cc_scaleout_ami_leader", "1 while this process holds the AMI lease",
                                value=1 if so.ami_token else 0)
        yield GaugeMetricFamily("cc_scaleout_ami_token", "the AMI lease's fencing token held (0: none)",
                                value=so.ami_token)
        yield GaugeMetricFamily("cc_scaleout_processes", "processes of the center alive", value=so.alive)
        yield GaugeMetricFamily("cc_scaleout_outbox_backlog", "outbox entries not yet written",
                                value=so.backlog)
        yield GaugeMetricFamily("cc_scaleout_outbox_db_down", "1 while the outbox waits for the database",
                                value=1 if w.db_down else 0)
        yield CounterMetricFamily("cc_scaleout_outbox_written", "outbox entries written", value=w.written)
        yield CounterMetricFamily("cc_scaleout_forwarded", "work sent to other processes",
                                  value=so.forwarded)
        yield CounterMetricFamily("cc_scaleout_stale_refused", "AMI events refused: stale leader token",
                                  value=so.refused_stale)
        yield CounterMetricFamily("cc_scaleout_live_dropped", "live messages not published (Redis away)",
                                  value=so.live.dropped)
