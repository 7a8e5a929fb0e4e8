"""A bare scale-out process: the leader election and the outbox worker of `callcenter run`,
without the web app or the PBX. The fault tests and bench/failover.py run several of these as
subprocesses and kill them.

``python -m callcenter.scaleout.node --redis URL --prefix P --db URL [--schema S] [--ttl 1]``
prints one line per event, flushed: ``elected <token> <unix time>``, ``lost <unix time>``,
``written <entry id> <external id> <op>``."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time

import redis.asyncio as aioredis

from callcenter.scaleout.lease import Elector, Lease
from callcenter.scaleout.outbox import Outbox, OutboxWorker
from crm_core.db import Database
from crm_core.fencing import fence_token, fenced_write


def say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    client = aioredis.from_url(args.redis, socket_timeout=2.0)
    reader = aioredis.from_url(args.redis, socket_timeout=None)
    db = Database(args.db, schema=args.schema)
    name = f"{os.uname().nodename}-{os.getpid()}"

    async def elected(token: int) -> None:
        async def noop(_s: object) -> None:
            return None
        with contextlib.suppress(Exception):
            await fenced_write(db, "ami", token, noop)
        say("elected", token, repr(time.time()))

    async def lost() -> None:
        say("lost", repr(time.time()))

    async def floor() -> int:
        try:
            return await fence_token(db, "ami")
        except Exception:  # noqa: BLE001 - database down
            return 0

    tasks = []
    elector = Elector(Lease(client, args.prefix, "ami", name, args.ttl), on_elected=elected,
                      on_lost=lost, floor=floor, every_s=args.ttl / 5)
    tasks.append(asyncio.ensure_future(elector.run()))
    if args.outbox:
        worker = OutboxWorker(Outbox(client, args.prefix, args.partitions), db, name,
                              lease_ttl_s=args.ttl, reader=reader, block_ms=100)
        worker.on_written.append(lambda eid, op: say("written", eid, op["external_id"], op["op"]))
        tasks.append(asyncio.ensure_future(worker.run()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    say("ready", name)
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=3)
    await reader.connection_pool.disconnect()
    await db.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--redis", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--schema")
    p.add_argument("--ttl", type=float, default=1.0)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--no-outbox", dest="outbox", action="store_false")
    asyncio.run(main(p.parse_args()))
