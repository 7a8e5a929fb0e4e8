"""FastAGI server under open-loop load: new sessions per second vs per-command turnaround.

The server (``callcenter.asterisk.fastagi.FastAgiServer``) runs in this process. A load generator
in a separate process plays Asterisk over loopback: sessions start at scheduled times
(``start + i / rate``) whatever happened to the earlier ones; each sends an environment block
and answers the 10 commands of the handler (ANSWER, GET VARIABLE x2, STREAM FILE, GET DATA,
SET VARIABLE x2, EXEC, SET MUSIC, VERBOSE) at once.

Per-command latency is taken at the generator: from sending its previous message (the
environment for the first command, then the previous reply) to receiving the next command, i.e.
the server's turnaround including loopback and both event loops. A failure is a refused or
broken connection, a FAILURE line, a session that does not end with its 10 commands, or one that
takes more than 5 s.

Baseline in the same run: a bare asyncio server (no codec, no session, no handler) that writes
the same 10 command lines, one per reply, at the same rates.

Run: ``.venv/bin/python bench/fastagi.py`` (about 1 minute); writes bench/results/fastagi.json.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import git_sha, pct, write_result  # noqa: E402

from callcenter.asterisk.agi import AgiCommand, AsteriskConnection, encode_command  # noqa: E402
from callcenter.asterisk.fastagi import AgiSession, FastAgiServer  # noqa: E402

RATES = [50, 100, 200, 400, 800, 1000, 1200]
STEP_SECONDS = 3.0
P99_TARGET_MS = 5.0
SESSION_DEADLINE_S = 5.0

ENV = [
    ("agi_network", "yes"), ("agi_network_script", "ivr?lang=en"),
    ("agi_request", "agi://127.0.0.1:4573/ivr?lang=en"),
    ("agi_channel", "Local/8300@inbound-00000007;2"), ("agi_language", "en"),
    ("agi_type", "Local"), ("agi_uniqueid", "1795590209.17"), ("agi_version", "22.10.1"),
    ("agi_callerid", "+14155550161"), ("agi_calleridname", "Ivy Ivr"),
    ("agi_callingpres", "0"), ("agi_callingani2", "0"), ("agi_callington", "0"),
    ("agi_callingtns", "0"), ("agi_dnid", "unknown"), ("agi_rdnis", "unknown"),
    ("agi_context", "inbound"), ("agi_extension", "s"), ("agi_priority", "2"),
    ("agi_enhanced", "0.0"), ("agi_accountcode", ""), ("agi_threadid", "140004007634624"),
    ("agi_arg_1", "first arg"),
]
ENV_BYTES = AsteriskConnection().send_env(ENV)

# What Asterisk answers (shapes from the captures), by the command's first word(s).
REPLIES = {
    "ANSWER": b"200 result=0\n",
    "GET VARIABLE": b"200 result=1 (+14155550161)\n",
    "STREAM FILE": b"200 result=0 endpos=8000\n",
    "GET DATA": b"200 result=1\n",
    "SET VARIABLE": b"200 result=1\n",
    "EXEC": b"200 result=0\n",
    "SET MUSIC": b"200 result=0\n",
    "VERBOSE": b"200 result=1\n",
}
COMMANDS_PER_SESSION = 10


async def ivr(s: AgiSession) -> None:
    """The handler under test: 10 commands, like a short IVR step."""
    await s.answer()
    cid = await s.get_variable("CALLERID(num)")
    await s.get_variable("CUSTOMER_TIER")
    await s.stream_file("welcome", "#")
    choice = await s.get_data("menu", 3000, 1)
    await s.set_variable("IVR_CHOICE", choice.digits)
    await s.exec("Playback", "silence/1")
    await s.set_music(True, "default")
    await s.set_variable("ROUTE_TO", f"Local/1001@agents,{cid}")
    await s.verbose("routing done", 1)


# The same command lines, for the bare baseline server.
BARE_COMMANDS = [encode_command(c) for c in [
    AgiCommand.of("ANSWER"), AgiCommand.of("GET VARIABLE", "CALLERID(num)"),
    AgiCommand.of("GET VARIABLE", "CUSTOMER_TIER"), AgiCommand.of("STREAM FILE", "welcome", "#"),
    AgiCommand.of("GET DATA", "menu", 3000, 1), AgiCommand.of("SET VARIABLE", "IVR_CHOICE", "1"),
    AgiCommand.of("EXEC", "Playback", "silence/1"), AgiCommand.of("SET MUSIC", "on", "default"),
    AgiCommand.of("SET VARIABLE", "ROUTE_TO", "Local/1001@agents,+14155550161"),
    AgiCommand.of("VERBOSE", "routing done", 1),
]]


class BareProtocol(asyncio.Protocol):
    """Baseline: frame on LF, write the next fixed command per reply, close after the last."""

    def __init__(self, stats: dict[str, int]) -> None:
        self.buf = b""
        self.env_done = False
        self.i = 0
        self.stats = stats

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.stats["open"] += 1
        self.stats["peak"] = max(self.stats["peak"], self.stats["open"])

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats["open"] -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.env_done:
            end = self.buf.find(b"\n\n")
            if end < 0:
                return
            self.env_done = True
            self.buf = self.buf[end + 2:]
            self.t.write(BARE_COMMANDS[0])  # type: ignore[attr-defined]
            self.i = 1
        while b"\n" in self.buf:
            _, self.buf = self.buf.split(b"\n", 1)
            if self.i == len(BARE_COMMANDS):
                self.t.close()
                return
            self.t.write(BARE_COMMANDS[self.i])  # type: ignore[attr-defined]
            self.i += 1


# --------------------------------------------------------------------------- load generator


class AsteriskClient(asyncio.Protocol):
    """One simulated Asterisk channel running AGI(agi://...)."""

    def __init__(self, done: asyncio.Future[None], lat: list[float]) -> None:
        self.done = done
        self.lat = lat
        self.buf = b""
        self.commands = 0
        self.failed: str | None = None
        self.last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.last = time.perf_counter()
        transport.write(ENV_BYTES)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                return
            line, self.buf = self.buf[:i], self.buf[i + 1:]
            if line.startswith(b"FAILURE"):
                self.failed = "FAILURE"
                continue
            self.lat.append((now - self.last) * 1000)
            self.commands += 1
            words = line.split(b" ", 2)
            reply = REPLIES.get(words[0].decode()) or REPLIES.get(b" ".join(words[:2]).decode())
            if reply is None:
                self.failed = f"unexpected command {line!r}"
                reply = b"510 Invalid or unknown command\n"
            self.t.write(reply)  # type: ignore[attr-defined]
            self.last = time.perf_counter()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _generate(port: int, rate: float, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    durations: list[float] = []
    lateness: list[float] = []
    failures: dict[str, int] = {}
    open_now = 0
    peak_open = 0

    def fail(kind: str) -> None:
        failures[kind] = failures.get(kind, 0) + 1

    async def session(due: float) -> None:
        nonlocal open_now, peak_open
        lateness.append((time.perf_counter() - due) * 1000)
        done: asyncio.Future[None] = loop.create_future()
        proto: AsteriskClient | None = None
        open_now += 1
        peak_open = max(peak_open, open_now)
        try:
            async with asyncio.timeout(SESSION_DEADLINE_S):
                _, proto = await loop.create_connection(
                    lambda: AsteriskClient(done, lat), "127.0.0.1", port)
                await done
        except TimeoutError:
            fail("timeout")
            return
        except OSError as exc:
            fail(type(exc).__name__)
            return
        finally:
            open_now -= 1
        durations.append((time.perf_counter() - due) * 1000)
        if proto.failed:
            fail(proto.failed)
        elif proto.commands != COMMANDS_PER_SESSION:
            fail("short session")

    n = int(rate * seconds)
    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(session(due)))
    await asyncio.gather(*tasks)
    return {"lat": lat, "durations": durations, "lateness": lateness, "failures": failures,
            "sessions": n, "peak_open_client": peak_open}


def _load_proc(port: int, rate: float, seconds: float, out: Any) -> None:
    gc.disable()  # the generator should not add GC pauses to the server's figures
    out.send(asyncio.run(_generate(port, rate, seconds)))
    out.close()


def run_load(port: int, rate: float, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_load_proc, args=(port, rate, seconds, send))
    p.start()
    send.close()
    res: dict[str, Any] = recv.recv()
    p.join()
    return res


# --------------------------------------------------------------------------- orchestration


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    lat, dur = res["lat"], res["durations"]
    return {
        "sessions": res["sessions"],
        "commands": len(lat),
        "failures": sum(res["failures"].values()),
        "failure_kinds": res["failures"],
        "median_command_ms": round(statistics.median(lat), 3) if lat else None,
        "p90_command_ms": round(pct(lat, 90), 3) if lat else None,
        "p99_command_ms": round(pct(lat, 99), 3) if lat else None,
        "max_command_ms": round(max(lat), 3) if lat else None,
        "median_session_ms": round(statistics.median(dur), 3) if dur else None,
        "p99_session_ms": round(pct(dur, 99), 3) if dur else None,
        "p99_start_lateness_ms": round(pct(res["lateness"], 99), 3) if res["lateness"] else None,
        "peak_open_client": res["peak_open_client"],
    }


async def bench(rates: list[int], seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    server = FastAgiServer({"ivr": ivr}, host="127.0.0.1", port=0, max_sessions=5000,
                           header_timeout=5.0, backlog=4096)
    await server.start()
    bare_stats = {"open": 0, "peak": 0}
    bare = await loop.create_server(lambda: BareProtocol(bare_stats), "127.0.0.1", 0,
                                    backlog=4096)
    bare_port = bare.sockets[0].getsockname()[1]
    # warm-up (untimed): imports, first connections, caches
    await loop.run_in_executor(None, run_load, server.port, 50, 0.5)
    await loop.run_in_executor(None, run_load, bare_port, 50, 0.5)
    steps = []
    try:
        for rate in rates:
            server.stats = type(server.stats)()
            res = _summary(await loop.run_in_executor(None, run_load, server.port, rate, seconds))
            res["peak_concurrent_server"] = server.stats.peak_concurrent
            res["mean_concurrent"] = round(rate * (res["median_session_ms"] or 0) / 1000, 2)
            res["handler_errors"] = server.stats.handler_errors
            bare_stats["peak"] = 0
            base = _summary(await loop.run_in_executor(None, run_load, bare_port, rate, seconds))
            base["peak_concurrent_server"] = bare_stats["peak"]
            steps.append({
                "rate_sessions_per_s": rate,
                "fastagi": res,
                "bare_asyncio": base,
                "ratio_p99_vs_bare": _ratio(res["p99_command_ms"], base["p99_command_ms"]),
                "ratio_median_vs_bare": _ratio(res["median_command_ms"], base["median_command_ms"]),
            })
            print(f"rate {rate}/s: p99 {res['p99_command_ms']} ms (bare {base['p99_command_ms']}),"
                  f" median {res['median_command_ms']} ms, failures {res['failures']},"
                  f" peak concurrent {res['peak_concurrent_server']}", file=sys.stderr)
    finally:
        await server.close()
        bare.close()
        await bare.wait_closed()
    return {"steps": steps}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--seconds", type=float, default=STEP_SECONDS)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    t0 = time.perf_counter()
    out = asyncio.run(bench(rates, a.seconds))
    best = None  # the highest rate that passes with every lower rate passing too
    for s in out["steps"]:
        f = s["fastagi"]
        if f["failures"] or f["p99_command_ms"] is None or f["p99_command_ms"] > P99_TARGET_MS:
            break
        best = s
    lowest = out["steps"][0]["fastagi"]
    result = {
        "benchmark": "fastagi",
        "headline": {
            "max_sessions_per_s_p99_5ms": best["rate_sessions_per_s"] if best else 0,
            "concurrent_at_max": best["fastagi"]["peak_concurrent_server"] if best else 0,
            "failures": best["fastagi"]["failures"] if best else 0,
            "p99_command_ms": best["fastagi"]["p99_command_ms"] if best else None,
        },
        "git_sha": git_sha(),
        "definition": {
            "command_latency": "at the load generator: previous message sent -> next command "
                               "received (server turnaround over loopback)",
            "pass": f"p99 per command <= {P99_TARGET_MS} ms and zero failures, at that rate "
                    "and every lower rate of the ladder",
            "concurrent_at_max": "peak admitted sessions in the server during that step",
            "load": "open loop, scheduled session starts, separate process (spawn)",
        },
        "data_sizes": {
            "env_bytes": len(ENV_BYTES),
            "commands_per_session": COMMANDS_PER_SESSION,
            "command_bytes_per_session": sum(len(c) for c in BARE_COMMANDS),
            "reply_bytes_per_session": sum(
                len(REPLIES[k]) for k in ["ANSWER", "GET VARIABLE", "GET VARIABLE",
                                          "STREAM FILE", "GET DATA", "SET VARIABLE", "EXEC",
                                          "SET MUSIC", "SET VARIABLE", "VERBOSE"]),
            "step_seconds": a.seconds,
            "rates": rates,
        },
        "baseline": "bare asyncio server writing the same 10 command lines (no codec/session)",
        "ratio_vs_lowest_rate_p99": {
            str(s["rate_sessions_per_s"]): _ratio(s["fastagi"]["p99_command_ms"],
                                                  lowest["p99_command_ms"])
            for s in out["steps"]},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "runtime_s": round(time.perf_counter() - t0, 1),
        **out,
    }
    if a.no_write:
        import json
        print(json.dumps(result))
    else:
        write_result("fastagi", result)


if __name__ == "__main__":
    main()
