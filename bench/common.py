"""Shared benchmark helpers: open-loop HTTP load from a separate process, percentiles, result files,
child processes, CPU time, logging."""
from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    """A progress line on stderr (stdout carries the result)."""
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def sqlite_url(name: str, fresh: bool = True) -> str:
    """The URL of var/bench/NAME; with `fresh`, the file and its -wal/-shm are removed first."""
    path = ROOT / "var" / "bench" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc); NaN if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """A bench script run again in another role (`script --role ROLE ...`): lines from its stdout,
    lines to its stdin; closing its stdin asks it to stop."""

    def __init__(self, script: str | Path, role: str, *extra: str) -> None:
        cmd = [sys.executable, str(Path(script).resolve()), "--role", role, *extra]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def line(self) -> str:
        out = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not out:
            raise RuntimeError(f"child {self.proc.args} exited ({self.proc.poll()})")
        return out

    def say(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def stop(self, timeout: float = 60) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_role(args: Any, **roles: Callable[[Any], Awaitable[None]]) -> bool:
    """Run the child role that `args.role` names (server=..., load=...) to its end; False for "main"."""
    main = roles.get(args.role)
    if main is None:
        return False
    asyncio.run(main(args))
    return True


def in_process(target: Callable[..., None], *args: Any) -> Any:
    """Run target(*args, out) in a spawned process and return the one object it sends on `out`."""
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=target, args=(*args, send))
    p.start()
    send.close()
    res = recv.recv()
    p.join()
    return res


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


def write_result(name: str, result: dict[str, Any], write: bool = True) -> Path | None:
    """Print the result as one JSON line and (unless `write` is false) save bench/results/NAME.json."""
    if not write:
        print(json.dumps(result))
        return None
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
    return in_process(_load_proc, urls, rate, warmup)  # type: ignore[no-any-return]
