"""The server side of bench/crm_lookup.py: an aiohttp server whose route does identify + customer_card
on the real store (the whole center is not started: this measures the store behind HTTP).

Run as a subprocess; prints `PORT <n>` once listening and serves until stdin closes.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web

from crm_core.db import Database
from crm_core.store import CrmStore


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--schema")
    args = ap.parse_args()
    db = Database(args.url, schema=args.schema)
    store = CrmStore(db)
    app = web.Application()

    async def pop(request: web.Request) -> web.Response:
        q = request.query
        card = await store.identify_card(phone=q.get("phone"), email=q.get("email"))
        if card is None:
            return web.json_response({"customer": None})
        return web.json_response(card.to_dict())

    async def noop(_request: web.Request) -> web.Response:
        return web.json_response({"customer": None})

    app.router.add_get("/bench/pop", pop)
    app.router.add_get("/bench/noop", noop)  # the HTTP floor: same server, no store work
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
