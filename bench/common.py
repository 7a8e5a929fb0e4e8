"""Shared benchmark helpers: open-loop HTTP load from a separate process, percentiles, result files."""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def git_sha() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def summary(lat_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(lat_ms),
        "median_ms": round(statistics.median(lat_ms), 3) if lat_ms else float("nan"),
        "p90_ms": round(pct(lat_ms, 90), 3),
        "p99_ms": round(pct(lat_ms, 99), 3),
        "max_ms": round(max(lat_ms), 3) if lat_ms else float("nan"),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    print(json.dumps(result))
    return path


async def _open_loop(urls: list[str], rate: float, warmup: int) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    failures = 0
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as http:
        for u in urls[:warmup]:  # warm the pool and the server's caches, untimed
            async with http.get(u) as r:
                await r.read()

        async def one(url: str, due: float) -> None:
            nonlocal failures
            try:
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        failures += 1
                        return
            except Exception:  # noqa: BLE001 - any failure counts
                failures += 1
                return
            # Measured from the scheduled send time: open loop, no coordinated omission.
            lat.append((time.perf_counter() - due) * 1000)

        tasks = []
        start = time.perf_counter() + 0.05
        for i, url in enumerate(urls[warmup:]):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(url, due)))
        await asyncio.gather(*tasks)
    return {"latencies_ms": lat, "failures": failures}


def _load_proc(urls: list[str], rate: float, warmup: int, out: Any) -> None:
    out.send(asyncio.run(_open_loop(urls, rate, warmup)))
    out.close()


def open_loop_load(urls: list[str], rate: float, warmup: int = 50) -> dict[str, Any]:
    """GET each URL at a fixed rate from a separate process; latencies are taken at that client."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_load_proc, args=(urls, rate, warmup, send))
    p.start()
    send.close()
    res = recv.recv()
    p.join()
    return res
