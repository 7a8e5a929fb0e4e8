"""Twilio webhooks under open-loop load: signed webhook in -> TwiML out, through the whole lifecycle.

The center (``init_app`` with ``twilio.enabled``, a migrated SQLite file) runs in this process. A
load generator in a separate process plays Twilio over loopback: calls start at scheduled times
(``start + i / rate``) whatever happened to the earlier ones, and each call posts four signed
webhooks in turn, as Twilio does:

1. ``/twilio/voice``: open the interaction, identify the caller, the IVR's first <Gather>;
2. ``/twilio/gather?n=1`` Digits=1: English, the identify lookup, hours, the main menu's <Gather>;
3. ``/twilio/gather?n=2`` Digits=0: into routing and <Enqueue> (no agent is ready);
4. ``/twilio/status`` CallStatus=completed: the caller hangs up; the call is abandoned.

Latency is taken at the generator, per webhook, from the moment it was due: the call's scheduled
start for the first, the previous answer for the others. A failure is a non-200 answer or a broken
connection. Callers are drawn from the seeded customers (90 %) or unknown numbers (10 %).

Baseline in the same run: an aiohttp app whose one handler reads the form, checks the signature
with the same RequestValidator and answers a fixed TwiML, under the same load.

Run: ``.venv/bin/python bench/twilio_webhooks.py`` (about 1 minute); writes
bench/results/twilio_webhooks.json.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import git_sha, in_process, summary, write_result  # noqa: E402

RATES = [5, 10, 20, 40]  # calls per second (four webhooks each)
STEP_SECONDS = 4.0
TOKEN = "bench-auth-token"
ACCOUNT = "AC" + "0" * 32
STEPS = ["voice", "gather1", "gather2", "status"]
CUSTOMERS = 500


# --------------------------------------------------------------------------- the load process
async def _calls(base: str, callers: list[str], rate: float, offset: int) -> dict[str, Any]:
    import aiohttp
    from twilio.request_validator import RequestValidator

    v = RequestValidator(TOKEN)
    lat: dict[str, list[float]] = {s: [] for s in STEPS}
    failures = 0

    async def post(http: aiohttp.ClientSession, path: str, params: dict[str, str]) -> bool:
        url = base + path
        headers = {"X-Twilio-Signature": v.compute_signature(url, params)}
        async with http.post(url, data=params, headers=headers) as r:
            await r.read()
            return r.status == 200

    async def one(http: aiohttp.ClientSession, i: int, due: float) -> None:
        nonlocal failures
        sid = f"CA{offset + i:032x}"
        p = {"AccountSid": ACCOUNT, "CallSid": sid, "From": callers[i], "To": "+15550001000",
             "CallStatus": "ringing", "Direction": "inbound"}
        plan = [("voice", "/twilio/voice", {}), ("gather1", "/twilio/gather?n=1", {"Digits": "1"}),
                ("gather2", "/twilio/gather?n=2", {"Digits": "0"}),
                ("status", "/twilio/status", {"CallStatus": "completed"})]
        t0 = due
        for step, path, extra in plan:
            try:
                ok = await post(http, path, {**p, **extra})
            except Exception:  # noqa: BLE001 - any failure counts
                ok = False
            if not ok:
                failures += 1
                return
            now = time.perf_counter()
            lat[step].append((now - t0) * 1000)
            t0 = now

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(len(callers)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, i, due)))
        await asyncio.gather(*tasks)
    return {"latencies_ms": lat, "failures": failures}


def _load_proc(base: str, callers: list[str], rate: float, offset: int, out: Any) -> None:
    out.send(asyncio.run(_calls(base, callers, rate, offset)))
    out.close()


def _load(base: str, callers: list[str], rate: float, offset: int) -> dict[str, Any]:
    return in_process(_load_proc, base, callers, rate, offset)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the servers
def _baseline_app() -> Any:
    from aiohttp import web
    from twilio.twiml.voice_response import VoiceResponse

    from callcenter.twilio.signature import is_signed

    resp = VoiceResponse()
    resp.say("Hello.", language="en-US")
    body = str(resp)

    async def handle(request: web.Request) -> web.Response:
        params = await request.post()
        if not is_signed(request, params, TOKEN, None):
            raise web.HTTPForbidden()
        return web.Response(text=body, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/twilio/{tail:.*}", handle)
    return app


async def _serve(app: Any) -> tuple[Any, str]:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


async def _center(db_path: Path) -> tuple[Any, str, list[str]]:
    import logging
    from datetime import UTC, datetime

    from callcenter.app import build_store, init_app
    from callcenter.bootstrap import load_seed, seed_catalog
    from callcenter.settings import load_settings
    from crm_core.db import Database

    logging.getLogger("callcenter.twilio").setLevel(logging.ERROR)
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    await db.upgrade()
    settings = load_settings(env={"CC_TWILIO__ENABLED": "true", "CC_TWILIO__ACCOUNT_SID": ACCOUNT,
                                  "CC_TWILIO__AUTH_TOKEN": TOKEN, "CC_CHAT__ENABLED": "false",
                                  "CC_EMAIL__ENABLED": "false", "CC_CALLBACKS__POLL_S": "0"})
    store = build_store(settings, db)
    seed = {k: v for k, v in load_seed(settings).items() if k != "admin"}
    await seed_catalog(store, seed)
    phones = []
    for i in range(CUSTOMERS):
        phone = f"+1202555{i:04d}"
        await store.create_customer(f"Customer {i}", phones=[phone])
        phones.append(phone)
    app = init_app(settings, database=db, ivr_clock=lambda: datetime(2026, 11, 25, 17, 0, tzinfo=UTC))
    runner, base = await _serve(app)
    return (runner, db), base, phones


def _callers(phones: list[str], n: int, rng: random.Random) -> list[str]:
    return [rng.choice(phones) if rng.random() < 0.9 else f"+1303555{rng.randrange(10000):04d}"
            for _ in range(n)]


async def main(rates: list[int], seconds: float) -> dict[str, Any]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        (runner, db), base, phones = await _center(Path(tmp) / "bench.db")
        brunner, bbase = await _serve(_baseline_app())
        rows = []
        offset = 0
        try:
            for rate in rates:
                n = int(rate * seconds)
                callers = _callers(phones, n, rng)
                loop = asyncio.get_running_loop()
                base_res = await loop.run_in_executor(None, _load, bbase, callers, rate, offset)
                offset += n
                full = await loop.run_in_executor(None, _load, base, callers, rate, offset)
                offset += n
                row: dict[str, Any] = {"calls_per_s": rate, "webhooks_per_s": rate * 4, "calls": n,
                                       "failures": full["failures"],
                                       "baseline_failures": base_res["failures"]}
                for step in STEPS:
                    row[step] = summary(full["latencies_ms"][step])
                    row[f"baseline_{step}"] = summary(base_res["latencies_ms"][step])
                all_full = [x for s in STEPS for x in full["latencies_ms"][s]]
                all_base = [x for s in STEPS for x in base_res["latencies_ms"][s]]
                row["all"], row["baseline_all"] = summary(all_full), summary(all_base)
                rows.append(row)
        finally:
            await brunner.cleanup()
            await runner.cleanup()
            await db.close()
    headline: dict[str, Any] = {}
    for row in rows:
        r = row["calls_per_s"]
        headline[f"median_ms_at_{r}_calls_per_s"] = row["all"]["median_ms"]
        headline[f"p99_ms_at_{r}_calls_per_s"] = row["all"]["p99_ms"]
        b = row["baseline_all"]["median_ms"]
        headline[f"median_ratio_vs_baseline_at_{r}"] = round(row["all"]["median_ms"] / b, 2) if b else None
        headline[f"failures_at_{r}"] = row["failures"]
    return {"bench": "twilio_webhooks", "git_sha": git_sha(), "database": "sqlite",
            "load_average_1m_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
            "customers": CUSTOMERS, "step_seconds": seconds, "headline": headline, "rates": rows,
            "notes": "latency per signed webhook at the client, open loop; baseline = signature check + "
                     "fixed TwiML in the same run; a shared 2-core machine"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=RATES)
    ap.add_argument("--seconds", type=float, default=STEP_SECONDS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    result = asyncio.run(main(args.rates, args.seconds))
    write_result("twilio_webhooks", result, write=not args.no_write)
