"""``callcenter reports …``: the reports' backfill and the daily summary by hand.

- ``reports rebuild``: recompute the contact rollup from every ended interaction (SQL only, one
  transaction) and take a customer snapshot; run it once after upgrading an existing database.
- ``reports send-daily``: email yesterday's summary to the subscribed supervisors now (the server
  does it by itself after midnight in each subscriber's time zone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    rep = subparsers.add_parser("reports", help="reports: rollup backfill, daily summary").add_subparsers(
        metavar="ACTION"
    )
    rb = rep.add_parser("rebuild", help="recompute the report rollups from the stored interactions")
    rb.set_defaults(func=cmd_rebuild)
    sd = rep.add_parser("send-daily", help="email the daily summary to subscribed supervisors now")
    sd.set_defaults(func=cmd_send_daily)


def cmd_rebuild(settings: Any, args: argparse.Namespace) -> int:
    from callcenter.bootstrap import open_store
    from crm_core.reports import rebuild

    async def run() -> dict[str, Any]:
        store = open_store(settings)
        try:
            t0 = time.perf_counter()
            out = await rebuild(store.db)
            return {**out, "took_s": round(time.perf_counter() - t0, 1)}
        finally:
            await store.db.close()

    print(json.dumps(asyncio.run(run())))
    return 0


def cmd_send_daily(settings: Any, args: argparse.Namespace) -> int:
    from callcenter.bootstrap import open_store
    from callcenter.services.report_mail import send_due

    async def run() -> int:
        store = open_store(settings)
        try:
            return await send_due(store, settings, force=True)
        finally:
            await store.db.close()

    print(f"callcenter: daily summary sent to {asyncio.run(run())} subscriber(s)")
    return 0
