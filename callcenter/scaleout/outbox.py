"""The interaction outbox: interaction writes go to Redis Streams first, and are written to the
database in order by exactly one process, so a database outage delays writes but loses none.

- `Outbox.put(op)` appends one write (crm_core/outbox_ops.py: open, state, event, update, link,
  disposition, survey, ticket; keyed by the interaction's id or its external id) to partition
  ``crc32(key) % P`` (``key``: ``i<interaction id>``, else the external id): one interaction's
  writes stay in one stream, in order.
- Each process runs an `OutboxWorker`. A partition is worked by the holder of its lease
  (lease.Lease, ``outbox:<p>``) as a consumer of the stream's consumer group: entries are read
  with XREADGROUP, written (crm_core.fencing.fenced_write: in one transaction with the
  partition's fence row, which refuses a stale holder and skips an entry already written; the
  entries read together in one transaction, one by one if one of them is refused), then
  acknowledged (XACK) and deleted. While the database is down the worker retries the same entry
  with back-off, so later entries wait behind it: order is kept. When a holder dies, its lease
  expires; the next holder first takes over the dead consumer's pending entries with XAUTOCLAIM,
  in order, then reads new ones.
- An entry the database refuses for good (an unknown interaction, bad data) is moved to
  ``P outbox:dead`` with the reason and acknowledged: nothing is dropped silently.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from callcenter.scaleout.lease import Lease
from crm_core.db import Database
from crm_core.errors import CrmError
from crm_core.fencing import StaleToken, apply_interaction_op, fenced_batch, fenced_write

log = logging.getLogger(__name__)
GROUP = "writers"
DB_DOWN = (OperationalError, DBAPIError, OSError, ConnectionError, asyncio.TimeoutError)
REFUSED = (CrmError, ValueError, KeyError, TypeError, IntegrityError, DataError)  # for good: not retried


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Outbox:
    def __init__(self, client: Any, prefix: str, partitions: int = 4) -> None:
        self.client, self.prefix, self.partitions = client, prefix, partitions
        self.store: Any = None  # a CrmStore (buffered.py sets it): the writer uses its rules
        # jobs that run alongside this process's writer (buffered.py: keeping interaction ids reserved)
        self.background: list[Callable[[], Awaitable[None]]] = []

    def stream(self, p: int) -> str:
        return f"{self.prefix}outbox:{p}"

    def partition(self, external_id: str) -> int:
        return zlib.crc32(external_id.encode()) % self.partitions

    async def put(self, op: Mapping[str, Any]) -> str:
        """Append one interaction write; returns its entry id. Raises if Redis is unavailable."""
        p = self.partition(str(op.get("key") or op["external_id"]))
        return _s(await self.client.xadd(self.stream(p), {"op": json.dumps(dict(op))}))

    async def backlog(self) -> int:
        """Entries not yet written (read or not)."""
        n = 0
        for p in range(self.partitions):
            n += int(await self.client.xlen(self.stream(p)))
        return n


class OutboxWorker:
    """Writes the outbox's partitions it holds the lease of. `written` counts the entries it wrote."""

    def __init__(self, outbox: Outbox, db: Database, consumer: str, *, lease_ttl_s: float = 5.0,
                 clock: Callable[[], float] = time.time, batch: int = 100, block_ms: int = 200,
                 retry_s: float = 0.2, max_retry_s: float = 2.0, reader: Any = None) -> None:
        self.outbox, self.db, self.consumer = outbox, db, consumer
        self.reader = reader if reader is not None else outbox.client  # for XREADGROUP BLOCK
        self.lease_ttl_s, self.clock, self.batch, self.block_ms = lease_ttl_s, clock, batch, block_ms
        self.retry_s = retry_s
        self.max_retry_s = min(max_retry_s, lease_ttl_s / 3)  # renewals between retries keep the lease
        self.written = 0
        self.skipped = 0
        self.db_down = False  # metrics: is this worker waiting for the database now
        self.on_written: list[Callable[[str, Mapping[str, Any]], None]] = []
        self.store: Any = None  # a CrmStore (else the outbox's): re-derives a customer's activity

    async def run(self) -> None:
        await asyncio.gather(*(self._partition(p) for p in range(self.outbox.partitions)),
                             *(job() for job in self.outbox.background))

    async def _partition(self, p: int) -> None:
        client = self.outbox.client
        lease = Lease(client, self.outbox.prefix, f"outbox:{p}", self.consumer, self.lease_ttl_s)
        stream = self.outbox.stream(p)
        delay = self.retry_s
        while True:
            try:
                token = await lease.acquire(self.clock())
                if not token:
                    await asyncio.sleep(self.lease_ttl_s / 4)
                    continue
                await self._ensure_group(stream)
                await self._work(p, stream, lease)
                delay = self.retry_s
            except asyncio.CancelledError:
                await lease.release()
                raise
            except (RedisError, OSError) as e:
                log.warning("outbox %d: Redis unavailable (%s); retrying in %.1f s", p, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_s)

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.outbox.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _keep(self, lease: Lease) -> None:
        """Renew the partition's lease while it is worked (a slow database write must not lose it)."""
        while lease.token:
            await asyncio.sleep(self.lease_ttl_s / 4)
            if not await lease.renew(self.clock()):
                return

    async def _work(self, p: int, stream: str, lease: Lease) -> None:
        keeper = asyncio.get_running_loop().create_task(self._keep(lease))
        try:
            await self._work_held(p, stream, lease, keeper)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper

    async def _work_held(self, p: int, stream: str, lease: Lease, keeper: asyncio.Task[None]) -> None:
        """While the lease holds: the dead consumers' pending entries first, then new ones."""
        client = self.outbox.client
        start = "0-0"
        while True:  # XAUTOCLAIM: entries another consumer read but never acknowledged
            res = await client.xautoclaim(stream, GROUP, self.consumer, min_idle_time=0,
                                          start_id=start, count=self.batch)
            start, entries = _s(res[0]), res[1]
            if entries:
                log.info("outbox %d: took over %d pending entries", p, len(entries))
            if not await self._write_all(p, stream, lease, entries):
                return
            if start == "0-0":
                break
        while True:
            if keeper.done() or not lease.token:
                return
            got = await self.reader.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.batch,
                                               block=self.block_ms)
            for _name, entries in got or ():
                if not await self._write_all(p, stream, lease, entries):
                    return

    async def _write_all(self, p: int, stream: str, lease: Lease, entries: list[Any]) -> bool:
        todo = []
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                await self.outbox.client.xack(stream, GROUP, entry_id)
                continue
            todo.append((_s(entry_id), fields))
        if len(todo) > 1:
            done = await self._write_batch(p, stream, lease, todo)
            if done is not None:
                return done
        for entry_id, fields in todo:  # one by one: an entry in the batch was refused
            if not await self._write_one(p, stream, lease, entry_id, fields):
                return False
        return True

    async def _hold(self, p: int, e: BaseException, delay: float) -> float:
        """The database is down: say so once, wait, and return the next (doubled) delay."""
        if not self.db_down:
            log.warning("outbox %d: database unavailable (%s); holding writes", p, type(e).__name__)
        self.db_down = True
        await asyncio.sleep(delay)
        return min(delay * 2, self.max_retry_s)

    async def _write_batch(self, p: int, stream: str, lease: Lease,
                           todo: list[tuple[str, Mapping[Any, Any]]]) -> bool | None:
        """The entries in one transaction (a backlog drains many times faster than one by one).
        True: written and acknowledged; False: the lease is lost; None: an entry is refused (or
        unreadable), nothing written: the caller writes them one by one."""
        try:
            ops = [(entry_id, json.loads(_s(fields.get(b"op") or fields.get("op"))))
                   for entry_id, fields in todo]
        except (TypeError, ValueError):
            return None
        store = self.store or self.outbox.store
        items = [(entry_id, partial(apply_op, op=op, store=store)) for entry_id, op in ops]
        delay = self.retry_s
        while True:
            try:
                applied = set(await fenced_batch(self.db, f"outbox:{p}", lease.token, items))
                self.db_down = False
                break
            except StaleToken:
                log.warning("outbox %d: lease lost to a newer holder; stopping", p)
                lease.token = 0
                return False
            except REFUSED:
                return None
            except DB_DOWN as e:
                delay = await self._hold(p, e, delay)
                if not lease.token:  # the keeper could not renew it
                    return False
        for entry_id, op in ops:
            if entry_id in applied:
                self.written += 1
                for cb in self.on_written:
                    cb(entry_id, op)
            else:
                self.skipped += 1
        ids = [entry_id for entry_id, _ in ops]
        async with self.outbox.client.pipeline(transaction=False) as pipe:
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
        return True

    async def _write_one(self, p: int, stream: str, lease: Lease, entry_id: str,
                         fields: Mapping[Any, Any]) -> bool:
        raw = fields.get(b"op") or fields.get("op")
        client = self.outbox.client
        delay = self.retry_s
        while True:
            try:
                op = json.loads(_s(raw))
                write = partial(apply_op, op=op, store=self.store or self.outbox.store)
                wrote, _ = await fenced_write(self.db, f"outbox:{p}", lease.token, write, entry_id=entry_id)
                self.db_down = False
                if wrote:
                    self.written += 1
                    for cb in self.on_written:
                        cb(entry_id, op)
                else:
                    self.skipped += 1
                break
            except StaleToken:
                log.warning("outbox %d: lease lost to a newer holder; stopping", p)
                lease.token = 0
                return False
            except REFUSED as e:
                log.error("outbox %d: entry %s refused (%s); moved to outbox:dead", p, entry_id, e)
                await client.xadd(f"{self.outbox.prefix}outbox:dead",
                                  {"op": _s(raw), "entry": entry_id, "error": str(e)[:500]})
                break
            except DB_DOWN as e:
                delay = await self._hold(p, e, delay)
                if not lease.token:  # the keeper could not renew it
                    return False
        await client.xack(stream, GROUP, entry_id)
        await client.xdel(stream, entry_id)
        return True


async def apply_op(s: Any, *, op: Mapping[str, Any], store: Any = None) -> int | None:
    return await apply_interaction_op(s, op, store)
