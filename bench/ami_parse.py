"""AMI parsing throughput: our sans-I/O codec vs panoramisk 1.4 vs pyst2's manager.

The captured Asterisk 22 streams (every ``ami-*.raw``; the banner kept once) are replicated to
about ``--events`` events.

* ours / panoramisk, in memory: 64 KiB chunks fed to ``AMIConnection.receive_data`` +
  ``events()``, and to ``panoramisk.ami_protocol.AMIProtocol.data_received`` (dummy transport
  and factory; its ``handle_message``/``dispatch`` run as in production).
* ours / pyst2, over a socket: a separate process writes the bytes into one end of a
  ``socket.socketpair()``; the consumer reads the other end: ``recv`` + our codec, and pyst2's
  ``Manager`` reading thread + message thread + event-dispatch thread (its real parse path,
  with a ``*`` event callback counting).  Time runs at the consumer, from "go" to the last event.

Prints one JSON object and writes ``bench/results/ami_parse.json``.
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import git_sha, pct, write_result  # noqa: E402
from callcenter.asterisk.ami import AMIConnection, Event  # noqa: E402

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "asterisk-captures"
if not CAPTURES.is_dir():
    CAPTURES = Path("/work/shared/asterisk-captures")
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CHUNK = 65536


def load_base() -> tuple[bytes, int, int]:
    """All captures, one banner; returns (bytes without banner, events, frames)."""
    parts = []
    for path in sorted(CAPTURES.glob("ami-*.raw")):
        data = path.read_bytes()
        if data.startswith(BANNER):
            data = data[len(BANNER):]
        parts.append(data)
    base = b"".join(parts)
    conn = AMIConnection()
    conn.receive_data(BANNER + base)
    msgs = list(conn.events())
    events = sum(isinstance(m, Event) for m in msgs)
    return base, events, len(msgs) - 1


def chunks_of(base: bytes) -> list[bytes]:
    return [base[i:i + CHUNK] for i in range(0, len(base), CHUNK)]


# ---- in memory ---------------------------------------------------------------------------------


def run_ours_memory(chunks: list[bytes], reps: int) -> tuple[float, int]:
    conn = AMIConnection()
    n = 0
    t0 = time.perf_counter()
    conn.receive_data(BANNER)
    for _ in range(reps):
        for chunk in chunks:
            conn.receive_data(chunk)
            for msg in conn.events():
                if msg.name:  # a consumer dispatches on the name and reads the call keys
                    msg.get("Uniqueid")
                    msg.get("Linkedid")
                    n += 1
    return time.perf_counter() - t0, n - 1  # minus the banner


def run_panoramisk(chunks: list[bytes], reps: int) -> tuple[float, int]:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        n = 0
        forgetable_actions: tuple[str, ...] = ()
        awaiting_actions: list[Any] = []

        def dispatch(self, message: Any) -> None:
            message.get("Uniqueid")  # the same consumer work as for ours
            message.get("Linkedid")
            self.n += 1

        def connection_lost(self, exc: Any) -> None:  # a Shutdown event calls this
            pass

    class Transport:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    proto = AMIProtocol()
    proto.connection_made(Transport())
    factory = Factory()
    proto.factory = factory
    t0 = time.perf_counter()
    proto.data_received(BANNER)
    for _ in range(reps):
        for chunk in chunks:
            proto.data_received(chunk)
    return time.perf_counter() - t0, factory.n


# ---- over a socket, load from another process ------------------------------------------------


def _writer(sock: socket.socket, go: Any, base: bytes, reps: int) -> None:
    go.wait()
    sock.sendall(BANNER)
    view = memoryview(base)
    for _ in range(reps):
        sock.sendall(view)
    sock.shutdown(socket.SHUT_WR)
    sock.close()


def _with_writer(base: bytes, reps: int, consume: Any) -> tuple[float, int]:
    ctx = mp.get_context("fork")
    a, b = socket.socketpair()
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    go = ctx.Event()
    proc = ctx.Process(target=_writer, args=(b, go, base, reps), daemon=True)
    proc.start()
    b.close()
    try:
        return consume(a, go)  # type: ignore[no-any-return]
    finally:
        a.close()
        proc.join(10)


def run_ours_socket(base: bytes, reps: int) -> tuple[float, int]:
    def consume(sock: socket.socket, go: Any) -> tuple[float, int]:
        conn = AMIConnection()
        n = 0
        t0 = time.perf_counter()
        go.set()
        recv = sock.recv
        while True:
            data = recv(CHUNK)
            conn.receive_data(data)
            for msg in conn.events():
                if msg.name:
                    msg.get("Uniqueid")
                    msg.get("Linkedid")
                    n += 1
            if not data:
                break
        return time.perf_counter() - t0, n - 1

    return _with_writer(base, reps, consume)


def run_pyst2_socket(base: bytes, reps: int) -> tuple[float, int]:
    """Time from "go" until pyst2's event-dispatch thread has handled the last event (its
    threads stop at EOF).  Returns (seconds, events delivered to the callback)."""
    from asterisk.manager import Manager

    def consume(sock: socket.socket, go: Any) -> tuple[float, int]:
        m = Manager()
        m._sock = sock.makefile(mode="rwb", buffering=0)
        count = [0]

        def on_event(event: Any, manager: Any) -> None:
            event.get_header("Uniqueid", None)
            event.get_header("Linkedid", None)
            count[0] += 1

        m.register_event("*", on_event)
        m._connected.set()
        m._running.set()
        m.message_thread.start()
        m.event_dispatch_thread.start()
        t0 = time.perf_counter()
        go.set()
        m.event_dispatch_thread.join(600)
        elapsed = time.perf_counter() - t0
        m._running.clear()
        m.message_thread.join(10)
        return elapsed, count[0]

    return _with_writer(base, reps, consume)


# ---- memory --------------------------------------------------------------------------------


def bytes_per_connection() -> dict[str, int]:
    """tracemalloc of one codec instance after a whole capture went through it (idle buffer),
    and of a codec holding a half-received message."""
    data = (CAPTURES / "ami-edge.raw").read_bytes()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    conns = []
    for _ in range(100):
        conn = AMIConnection()
        conn.receive_data(data)
        for _msg in conn.events():
            pass
        conns.append(conn)
    after = tracemalloc.take_snapshot()
    idle = sum(s.size_diff for s in after.compare_to(before, "filename")) // 100
    for conn in conns:
        conn.receive_data(b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/20")
    partial_snap = tracemalloc.take_snapshot()
    partial = sum(s.size_diff for s in partial_snap.compare_to(before, "filename")) // 100
    tracemalloc.stop()
    del conns
    return {"codec_idle": idle, "codec_with_partial_frame": partial}


# ---- main ----------------------------------------------------------------------------------


def stats(times: list[float], events: int) -> dict[str, Any]:
    rates = [events / t for t in times]
    return {
        "runs": len(times),
        "seconds": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 4),
        "p99_s": round(pct(times, 99), 4),
        "events_per_s_median": round(events / statistics.median(times)),
        "events_per_s_p99_slowest": round(min(rates)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000, help="events per run (approx.)")
    ap.add_argument("--pyst2-events", type=int, default=20_000,
                    help="events per pyst2 run (its unbuffered socket file reads byte by byte: ~100x slower)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pyst2-runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    base, base_events, base_frames = load_base()
    reps = max(1, round(args.events / base_events))
    preps = max(1, round(args.pyst2_events / base_events))
    chunks = chunks_of(base)
    events = base_events * reps
    frames = base_frames * reps

    # a short warm-up, and a check that every library sees every event
    _, n = run_ours_memory(chunks, 1)
    assert n == base_frames, (n, base_frames)
    _, n = run_panoramisk(chunks, 1)
    assert n == base_events, (n, base_events)

    ours: list[float] = []
    pano: list[float] = []
    for _ in range(args.runs):  # interleaved, so that machine noise hits both alike
        t, n = run_ours_memory(chunks, reps)
        assert n == frames
        ours.append(t)
        t, n = run_panoramisk(chunks, reps)
        assert n == events
        pano.append(t)
    ours_sock: list[float] = []
    pyst2: list[float] = []
    pyst2_delivered = 0
    for _ in range(args.pyst2_runs):
        t, n = run_ours_socket(base, preps)
        assert n == base_frames * preps, n
        ours_sock.append(t)
        t, pyst2_delivered = run_pyst2_socket(base, preps)
        pyst2.append(t)

    mem = bytes_per_connection()
    ours_rate = events / statistics.median(ours)
    pano_rate = events / statistics.median(pano)
    sock_events = base_events * preps
    ours_sock_rate = sock_events / statistics.median(ours_sock)
    pyst2_rate = sock_events / statistics.median(pyst2)
    result: dict[str, Any] = {
        "bench": "ami_parse",
        "headline": {
            "events_per_s": round(ours_rate),
            "ratio_vs_panoramisk": round(ours_rate / pano_rate, 2),
            "ratio_vs_pyst2": round(ours_sock_rate / pyst2_rate, 2),
            "bytes_per_connection": mem["codec_idle"],
        },
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "data": {
            "captures": sorted(p.name for p in CAPTURES.glob("ami-*.raw")),
            "base_bytes": len(base),
            "base_events": base_events,
            "base_messages": base_frames,
            "replications": reps,
            "events": events,
            "messages": frames,
            "bytes": len(base) * reps,
            "socket_replications": preps,
            "socket_events": sock_events,
            "socket_bytes": len(base) * preps,
            "chunk_bytes": CHUNK,
        },
        "notes": (
            "events_per_s counts AMI events of the stream (responses are parsed too: messages = "
            "events + responses). In memory: 64 KiB chunks; ours = AMIConnection.receive_data + "
            "events(), panoramisk = AMIProtocol.data_received (1.4). Socket: a forked writer "
            "process fills a socketpair; ours = recv + codec in the consumer; pyst2 = its "
            "Manager threads (reader, message loop, event dispatch) with a '*' callback. "
            "Runs interleaved; ratio_vs_panoramisk compares in-memory medians, ratio_vs_pyst2 "
            "socket medians."),
        "ours_memory": stats(ours, events),
        "panoramisk_memory": stats(pano, events),
        "ours_socket": stats(ours_sock, sock_events),
        "pyst2_socket": {**stats(pyst2, sock_events),
                         "events_delivered_last_run": pyst2_delivered,
                         "note": "pyst2 loses events around the Park response's stray LF"},
        "memory_bytes": mem,
    }
    if args.no_write:
        print(json.dumps(result))
    else:
        write_result("ami_parse", result)


if __name__ == "__main__":
    main()
