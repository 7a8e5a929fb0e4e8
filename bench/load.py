"""End-to-end load: calls, chats and email at once, with 1, 2 and 4 server processes.

One PostgreSQL and one Redis. Per process count N (fresh server processes, same database):

- **sim** (load generator): the Asterisk simulator (bench/screen_pop.py's `sim` role) with
  `--agents` phones that answer after 0.2 s and talk a fixed time; callers (seeded customers)
  arrive open loop (Poisson) at each rate of `--rates`, their FastAGI sessions spread over the N
  servers in turn. Each caller presses 0 (bench flow) and 5 in the survey.
- **servers**: N processes of the real app (`init_app`; scale-out on: routing on the Redis store,
  AMI on the lease holder only), each with its FastAGI server, chat and SMTP listener.
- **consoles**: `--agents` agent consoles over websockets spread over the servers: ready, ack
  every voice offer, accept every chat and email offer, submit each wrap-up.
- **traffic**: `--chats` chat widgets (started before the calls, kept open, messages open loop at
  `--chat-msgs` per second in all) and inbound email over SMTP at `--emails` per second.

Screen pop latency: the interaction's `queue` timeline event to the voice offer's receipt at a
console (as bench/screen_pop.py). A rate is sustained when p99 <= 100 ms and no call of its window
went without an offer. CPU: user+system of every server process over each step, per call offered
(chat and email traffic run throughout: `background_cpu_pct` is measured without calls). Memory:
each server's RSS at the end. Claim rate: offers (voice + chat + email) received per second.
Lost contacts: a call queued but never offered, a chat started but never joined by an agent, a
mail accepted by SMTP but never offered. Duplicated: a contact offered again without a re-queue
on its timeline, a chat or a mail offered twice.

Console sessions are created in the store directly (2,000 production-cost sign-ins would take
minutes and are not what is measured).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import screen_pop as sp  # noqa: E402
from bench.common import git_sha, write_result  # noqa: E402

ROOT = sp.ROOT
SCHEMA = "bench_load"
ORIGIN = "http://shop.bench.invalid"
MARKER = ROOT / "var" / "bench" / "load_seeded.json"
SP_AGENT_ARGS = ("--talk-time", "--answer-after")
log = sp.log


# ============================================================================ set-up
async def setup_db(args: argparse.Namespace) -> dict[str, Any]:
    """Migrations, catalog, agents (voice 1, chat 3, email 5), customers: bench/screen_pop.py's."""
    ns = argparse.Namespace(agents=args.agents, customers=args.customers, per_customer=args.per_customer,
                            skills={"billing": 5, "support": 5, "email": 5})
    return await sp.setup_db("postgres", sp.PG, SCHEMA, ns)


async def make_sessions(n: int) -> list[str]:
    """The agents' console cookies (bench/screen_pop.py writes the sessions to the store)."""
    names = [f"bench{i:03d}" for i in range(n)]
    cookies = await sp.make_sessions(sp.PG, SCHEMA, names)
    return [cookies[u] for u in names]


# ============================================================================ process: consoles
async def consoles_main(args: argparse.Namespace) -> None:
    import websockets

    cookies = json.loads(Path(args.cookies).read_text())
    bases = args.base.split(",")
    offers: list[tuple[int, float, int]] = []  # voice: interaction, receipt (epoch s), agent
    chat_offers: dict[int, int] = {}
    email_offers: dict[str, int] = {}
    counts: dict[str, int] = {}
    ready = asyncio.Event()
    n_ready = [0]
    dumps, loads = json.dumps, json.loads

    def count(k: str) -> None:
        counts[k] = counts.get(k, 0) + 1

    handshakes = asyncio.Semaphore(20)  # a connection storm would exhaust the servers' DB pools

    async def console(i: int) -> None:
        base = bases[i % len(bases)]
        for attempt in range(5):
            try:
                async with handshakes:
                    ws = await websockets.connect(
                        base.replace("http", "ws") + "/ws/agent", max_queue=None,
                        additional_headers={"Cookie": cookies[i], "Origin": base},
                        ping_interval=None, compression=None, max_size=2**24, open_timeout=120)
                async with ws:
                    was_ready = False
                    async for raw in ws:
                        t = time.time()
                        msg = loads(raw)
                        typ = msg["type"]
                        if typ == "offer":
                            count(f"offer:{msg.get('channel')}")
                            if msg.get("channel") == "email":
                                email_offers[msg["caller"]] = email_offers.get(msg["caller"], 0) + 1
                                await ws.send(dumps({"type": "email_accept", "offer_id": msg["offer_id"]}))
                            else:
                                offers.append((msg["interaction_id"], t, i))
                                await ws.send(dumps({"type": "ack_offer", "offer_id": msg["offer_id"]}))
                        elif typ == "chat_offer":
                            iid = msg["interaction_id"]
                            chat_offers[iid] = chat_offers.get(iid, 0) + 1
                            await ws.send(dumps({"type": "chat_accept", "offer_id": msg["offer_id"]}))
                        elif typ == "wrapup":
                            await ws.send(dumps({"type": "submit_wrapup", "disposition": "resolved",
                                                 "interaction_id": msg["interaction_id"],
                                                 "notes": "load call"}))
                        elif typ == "hello":
                            await ws.send(dumps({"type": "set_state", "state": "ready"}))
                        elif typ == "agent_state":
                            if msg["state"] in ("ready", "busy") and not was_ready:
                                was_ready = True
                                n_ready[0] += 1
                                if n_ready[0] >= len(cookies):
                                    ready.set()
                            elif msg["state"] == "not_ready":
                                count("not_ready")
                                await ws.send(dumps({"type": "set_state", "state": "ready"}))
                        elif typ == "error":  # by code and message: what was refused, and why
                            count(f"error:{msg.get('code')}:{str(msg.get('message'))[:60]}")
                        else:
                            count(typ)
                return
            except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
                count(f"reconnect:{type(e).__name__}")
                await asyncio.sleep(1 + attempt)

    t0 = time.perf_counter()
    tasks = []
    for i in range(len(cookies)):  # spread over ~20 s: their periodic session checks spread too
        tasks.append(asyncio.create_task(console(i)))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(ready.wait(), 600)
    print(json.dumps({"ready": n_ready[0], "connect_s": round(time.perf_counter() - t0, 1)}), flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "count":
        print(json.dumps({"voice": len(offers), "chat": sum(chat_offers.values()),
                          "email": sum(email_offers.values())}), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"offers": offers, "chat_offers": chat_offers, "email_offers": email_offers,
                      "counts": counts}), flush=True)


# ============================================================================ process: traffic
async def traffic_main(args: argparse.Namespace) -> None:
    """Chats (kept open, messages open loop) and inbound mail (open loop) until told to stop."""
    import smtplib
    from concurrent.futures import ThreadPoolExecutor

    import websockets

    from bench.email_ingest import make_message

    bases = args.base.split(",")
    smtp_ports = [int(p) for p in args.smtp_ports.split(",")]
    joined: dict[int, bool] = {}
    started: dict[int, bool] = {}
    chat_iid: dict[int, int] = {}
    errors: dict[str, int] = {}
    widgets: list[Any] = [None] * args.chats
    loads, dumps = json.loads, json.dumps

    async def widget(i: int) -> None:
        base = bases[i % len(bases)]
        ws = await websockets.connect(base.replace("http", "ws") + "/ws/chat?site=bench",
                                      additional_headers={"Origin": ORIGIN}, max_queue=None,
                                      ping_interval=None, compression=None, open_timeout=120)
        widgets[i] = ws
        await ws.send(dumps({"type": "start", "name": f"Load Customer {i}", "email": f"load{i}@example.com"}))
        async for raw in ws:
            msg = loads(raw)
            t = msg["type"]
            if t == "welcome":
                started[i] = True
                if "interaction_id" in msg:
                    chat_iid[i] = msg["interaction_id"]
            elif t == "agent":
                joined[i] = True
            elif t == "error":
                errors[msg.get("code", "?")] = errors.get(msg.get("code", "?"), 0) + 1
                if not started.get(i):
                    await asyncio.sleep(1.0)
                    await ws.send(dumps({"type": "start", "name": f"Load Customer {i}",
                                         "email": f"load{i}@example.com"}))

    readers = []
    for i in range(args.chats):
        readers.append(asyncio.create_task(widget(i)))
        if i % 25 == 24:
            await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    while len(joined) < args.chats and time.perf_counter() - t0 < args.join_s:
        await asyncio.sleep(0.2)
    print(json.dumps({"chats_joined": len(joined), "join_s": round(time.perf_counter() - t0, 1)}), flush=True)

    pool = ThreadPoolExecutor(max_workers=8)
    loop = asyncio.get_running_loop()
    sent_mail: dict[str, bool] = {}
    rnd = random.Random(11)
    run = f"load{os.getpid()}"

    def smtp_send(port: int, sender: str, data: bytes) -> bool:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
            c.sendmail(sender, ["support@example.com"], data)
        return True

    async def one_mail(n: int) -> None:
        addr = f"c{n}.{run}@example.org"
        try:
            await loop.run_in_executor(pool, smtp_send, smtp_ports[n % len(smtp_ports)], addr,
                                       make_message(n, run, rnd, False))
            sent_mail[addr] = True
        except Exception as e:  # noqa: BLE001 - counted
            errors[f"smtp:{type(e).__name__}"] = errors.get(f"smtp:{type(e).__name__}", 0) + 1

    stop = asyncio.Event()
    counter = [0]
    mail_tasks: list[asyncio.Task[None]] = []

    async def chat_loop() -> None:
        k, start = 0, time.perf_counter()
        while not stop.is_set():
            due = start + k / args.chat_msgs
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            i = k % args.chats
            k += 1
            if widgets[i] is not None and joined.get(i):
                n = counter[0] = counter[0] + 1
                with contextlib.suppress(Exception):
                    await widgets[i].send(dumps({"type": "send", "client_id": str(n), "text": f"load {n}"}))

    async def mail_loop() -> None:
        n, start = 0, time.perf_counter()
        while not stop.is_set():
            due = start + n / args.emails
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            mail_tasks.append(asyncio.create_task(one_mail(n)))
            n += 1

    loops = [asyncio.create_task(chat_loop()), asyncio.create_task(mail_loop())]
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    stop.set()
    for t in loops:
        t.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    await asyncio.gather(*mail_tasks, return_exceptions=True)
    print(json.dumps({"chats": args.chats, "chats_started": len(started), "chats_joined": len(joined),
                      "chat_msgs_sent": counter[0], "mails_sent": len(sent_mail),
                      "mails": sorted(sent_mail), "errors": errors}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the offers were counted: close
    for ws in widgets:
        with contextlib.suppress(Exception):
            await ws.close()
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    pool.shutdown(wait=False)


# ============================================================================ orchestration
class Child(sp.Child):
    def __init__(self, role: str, *extra: str, env: dict[str, str] | None = None) -> None:
        import subprocess

        cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT, env={**os.environ, **(env or {})})

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def run_procs(n: int, args: argparse.Namespace, cookies_file: Path, callers_file: Path,
              sink_port: int) -> dict[str, Any]:
    since = datetime.now(UTC)
    prefix = f"bench_load_{n}_{os.getpid()}_{int(time.time())}:"
    scaleout = args.scaleout == "on" or (args.scaleout == "multi" and n > 1)
    env = {"CC_REDIS_URL": args.redis, "CC_REDIS_PREFIX": prefix,
           "CC_SCALEOUT__ENABLED": "true" if scaleout else "false",
           "CC_CHAT__SITES": json.dumps([{"id": "bench", "origins": [ORIGIN]}]),
           "CC_CHAT__RATE_PER_IP": "1000000", "CC_CHAT__BURST_PER_IP": "1000000",
           "CC_CHAT__DEMO_SITE_PORT": "", "CC_EMAIL__ENABLED": "true", "CC_EMAIL__SMTP_PORT": "0",
           "CC_EMAIL__SMARTHOST_PORT": str(sink_port),
           "CC_EMAIL__ATTACHMENTS_DIR": str(ROOT / "var" / "bench" / "load_mail")}
    sim = Child("sim", "--callers", str(callers_file), "--agents", str(args.agents),
                "--talk-time", str(args.talk_time), "--answer-after", str(args.answer_after))
    servers: list[Child] = []
    consoles = traffic = None
    steps = []
    try:
        ami_port = int(sim.line().split()[1])
        for _ in range(n):
            servers.append(Child("server", "--url", sp.PG, "--schema", SCHEMA, "--ami-port", str(ami_port),
                                 env={"LOAD_EXTRA_ENV": json.dumps(env)}))
        ports = [s.line().split()[1:4] for s in servers]
        bases = ",".join(f"http://127.0.0.1:{p[0]}" for p in ports)
        sim.ask({"cmd": "agi", "ports": [int(p[1]) for p in ports]})
        consoles = Child("consoles", "--base", bases, "--cookies", str(cookies_file))
        log(f"{n} proc: consoles {consoles.line().strip()}")
        traffic = Child("traffic", "--base", bases, "--smtp-ports", ",".join(p[2] for p in ports),
                        "--chats", str(args.chats), "--chat-msgs", str(args.chat_msgs),
                        "--join-s", str(args.join_s),
                        "--emails", str(args.emails))
        log(f"{n} proc: traffic {traffic.line().strip()}")
        pids = [s.proc.pid for s in servers]

        def server_cpu() -> float:
            return sum(sp.cpu_s(p) for p in pids)

        def offers_now() -> dict[str, int]:
            consoles.send("count")  # type: ignore[union-attr]
            return json.loads(consoles.line())  # type: ignore[union-attr]

        c0, t0 = server_cpu(), time.perf_counter()
        time.sleep(args.background_s)  # chats and mail, no calls
        background_pct = round((server_cpu() - c0) * 100 / (time.perf_counter() - t0), 1)
        log(f"{n} proc: background (chats + mail, no calls) {background_pct} % CPU")
        sim.ask({"cmd": "run", "rate": 5, "duration": args.warmup_s})
        for rate in args.rates:
            duration = args.duration_s + args.settle_s
            before, gen_cpu, o0 = server_cpu(), sp.cpu_s(sim.proc.pid), offers_now()
            per = [sp.cpu_s(p) for p in pids]
            r = sim.ask({"cmd": "run", "rate": rate, "duration": duration})
            used = server_cpu() - before
            o1 = offers_now()
            r["server_cpu_s"] = round(used, 2)
            r["server_cpu_s_each"] = [round(sp.cpu_s(p) - c, 2) for p, c in zip(pids, per, strict=True)]
            r["sim_cpu_s"] = round(sp.cpu_s(sim.proc.pid) - gen_cpu, 2)
            r["offers"] = {k: o1[k] - o0[k] for k in o1}
            steps.append({"rate": rate, **r})
            log(f"{n} proc: {rate} calls/s: {r}")
        drained = sim.ask({"cmd": "idle", "timeout": 90})
        memory = [rss_mb(p) for p in pids]
        traffic.send("stop")
        tdump = json.loads(traffic.line())
        time.sleep(3)  # the last mails reach a console
        consoles.send("dump")
        cdump = json.loads(consoles.line())
        traffic.send("close")
    finally:
        for c in (traffic, consoles, *servers, sim):
            if c is not None:
                c.stop()
    marks = asyncio.run(sp.timeline_marks(sp.PG, SCHEMA, since))
    voice = {int(r[0]) for r in asyncio.run(sp.db_query(
        sp.PG, SCHEMA, "SELECT id FROM interactions WHERE channel = 'voice' AND created_at >= :since",
        since=since))}
    marks = {k: {i: v for i, v in m.items() if i in voice} for k, m in marks.items()}  # chats queue too
    first_offer: dict[int, float] = {}
    n_offers: dict[int, int] = {}
    for iid, t, _a in cdump["offers"]:
        first_offer[iid] = min(t, first_offer.get(iid, t))
        n_offers[iid] = n_offers.get(iid, 0) + 1
    queue_at = {iid: ts[0] for iid, ts in marks.get("queue", {}).items()}
    requeues = {iid: len(ts) for iid, ts in marks.get("requeue", {}).items()}
    rows = []
    for st in steps:
        lo, hi = st["start"] + args.settle_s, st["end"]
        ids = [i for i, t in queue_at.items() if lo <= t < hi]
        lat = [(first_offer[i] - queue_at[i]) * 1000 for i in ids if i in first_offer]
        lost = [i for i in ids if i not in first_offer]
        summ = sp.summarise(lat)
        calls = max(1, st["calls"])
        window = st["end"] - st["start"]
        rows.append({
            "rate_cps": st["rate"], "offered_calls": st["calls"], "queued_in_window": len(ids),
            "screen_pop": summ, "lost_calls": len(lost),
            "sustained": bool(summ.get("p99_ms") is not None and summ["p99_ms"] <= args.p99_ms and not lost),
            "cpu_ms_per_call": round(st["server_cpu_s"] * 1000 / calls, 2),
            "cpu_ms_per_call_net": round((st["server_cpu_s"] - background_pct / 100 * window)
                                         * 1000 / calls, 2),
            "cpu_s_per_server": st["server_cpu_s_each"],
            "server_cores_busy": round(st["server_cpu_s"] / window, 2),
            "sim_cpu_ms_per_call": round(st["sim_cpu_s"] * 1000 / calls, 2),
            "claims_per_s": round(sum(st["offers"].values()) / window, 1), "offers": st["offers"],
            "generator_lag_p99_ms": st.get("lag_p99_ms"),
        })
    lost_calls = sum(1 for i in queue_at if i not in first_offer)
    dup_calls = sum(1 for i, k in n_offers.items() if k > 1 + requeues.get(i, 0))
    chat_lost = tdump["chats_started"] - tdump["chats_joined"] + (tdump["chats"] - tdump["chats_started"])
    chat_dup = sum(1 for k in cdump["chat_offers"].values() if k > 1)
    mail_lost = sum(1 for a in tdump["mails"] if a not in cdump["email_offers"])
    mail_dup = sum(1 for k in cdump["email_offers"].values() if k > 1)
    ok = [r["rate_cps"] for r in rows if r["sustained"]]
    return {
        "processes": n, "scaleout": scaleout, "rates": rows, "background_cpu_pct": background_pct,
        "max_cps_p99_100ms": max(ok) if ok else 0,
        "memory_mb_per_process": memory, "drained": drained,
        "lost": {"calls": lost_calls, "chats": chat_lost, "emails": mail_lost},
        "duplicated": {"calls": dup_calls, "chats": chat_dup, "emails": mail_dup},
        "chats": {k: tdump[k] for k in ("chats", "chats_started", "chats_joined", "chat_msgs_sent")},
        "emails_sent": tdump["mails_sent"], "traffic_errors": tdump["errors"],
        "console_counts": cdump["counts"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "server", "sim", "consoles", "traffic"])
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--per-customer", type=int, default=5)
    ap.add_argument("--rates", default="25,50,75")
    ap.add_argument("--duration-s", type=float, default=30.0, help="measured seconds per rate")
    ap.add_argument("--settle-s", type=float, default=8.0)
    ap.add_argument("--warmup-s", type=float, default=8.0)
    ap.add_argument("--background-s", type=float, default=8.0)
    ap.add_argument("--scaleout", default="multi", choices=["on", "off", "multi"],
                    help="scale-out mode (routing on Redis, AMI lease): always, never, or with 2+ processes")
    ap.add_argument("--chats", type=int, default=500)
    ap.add_argument("--join-s", type=float, default=300.0, help="wait this long for the chats to be joined")
    ap.add_argument("--chat-msgs", type=float, default=50.0, help="chat messages per second, in all")
    ap.add_argument("--emails", type=float, default=1.0, help="inbound mails per second")
    ap.add_argument("--talk-time", type=float, default=7.0)
    ap.add_argument("--answer-after", type=float, default=0.2)
    ap.add_argument("--p99-ms", type=float, default=100.0)
    ap.add_argument("--redis", default=os.environ.get("CC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--reuse", action="store_true", help="reuse the database seeded by an earlier run")
    ap.add_argument("--seed-only", action="store_true", help="seed (or check the seeded database) and stop")
    ap.add_argument("--out", default="load")
    # child processes (and bench/screen_pop.py's sim and server roles)
    ap.add_argument("--url")
    ap.add_argument("--schema")
    ap.add_argument("--ami-port", type=int)
    ap.add_argument("--callers")
    ap.add_argument("--base")
    ap.add_argument("--cookies")
    ap.add_argument("--smtp-ports")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    if args.role == "server":
        asyncio.run(sp.server_main(args, json.loads(os.environ.get("LOAD_EXTRA_ENV", "{}"))))
        return
    if args.role == "sim":
        asyncio.run(sp.sim_main(args))
        return
    if args.role == "consoles":
        asyncio.run(consoles_main(args))
        return
    if args.role == "traffic":
        asyncio.run(traffic_main(args))
        return
    args.rates = [int(r) if float(r).is_integer() else float(r) for r in args.rates.split(",")]
    key = f"{args.customers}:{args.per_customer}:{args.agents}"
    marker = json.loads(MARKER.read_text()) if MARKER.exists() else {}
    if args.reuse and key in marker and asyncio.run(sp.schema_matches(sp.PG, SCHEMA)):
        setup = {**marker[key], "reused": True}
    else:
        log(f"seeding {args.customers} customers, {args.agents} agents")
        setup = {**asyncio.run(setup_db(args)), "reused": False}
        MARKER.parent.mkdir(parents=True, exist_ok=True)
        MARKER.write_text(json.dumps({**marker, key: setup}))
    setup["sla_escalated_before_run"] = asyncio.run(sp.settle_sla(sp.PG, SCHEMA))
    if args.seed_only:
        return
    callers_file = ROOT / "var" / "bench" / "load_callers.json"
    callers_file.write_text(json.dumps(asyncio.run(sp.caller_phones(sp.PG, SCHEMA, 30000))))
    cookies_file = ROOT / "var" / "bench" / "load_cookies.json"
    cookies_file.write_text(json.dumps(asyncio.run(make_sessions(args.agents))))

    from aiosmtpd.controller import Controller

    class Sink:  # the smarthost: acknowledgements to customers end here
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    import socket

    with socket.socket() as probe:  # a free port (the Controller cannot take port 0)
        probe.bind(("127.0.0.1", 0))
        sink_port = probe.getsockname()[1]
    sink = Controller(Sink(), hostname="127.0.0.1", port=sink_port)
    sink.start()
    runs = []
    try:
        for n in [int(x) for x in args.procs.split(",")]:
            log(f"=== {n} server process(es)")
            runs.append(run_procs(n, args, cookies_file, callers_file, sink_port))
            log(f"{n} proc: {json.dumps({k: v for k, v in runs[-1].items() if k != 'rates'})}")
    finally:
        sink.stop()
    counts = asyncio.run(sp.row_counts(sp.PG, SCHEMA))
    by = {r["processes"]: r for r in runs}
    common = max((r for r in args.rates if r <= 50), default=args.rates[0])

    def cpu_at(n: int) -> float | None:
        r = by.get(n)
        row = next((x for x in r["rates"] if x["rate_cps"] == common), None) if r else None
        return row["cpu_ms_per_call"] if row else None

    headline = {
        "max_cps_p99_100ms_1proc": by[1]["max_cps_p99_100ms"] if 1 in by else None,
        "cpu_ms_per_call_1proc": cpu_at(1), "cpu_ms_per_call_2proc": cpu_at(2),
        "cpu_ms_per_call_4proc": cpu_at(4),
        "lost_contacts": sum(sum(r["lost"].values()) for r in runs),
        "duplicated_contacts": sum(sum(r["duplicated"].values()) for r in runs),
    }
    base_row = by[min(by)]["rates"][0]
    write_result(args.out, {
        "bench": "load", "headline": headline,
        "targets": {"cps_sustained_1proc_min": 50, "p99_ms_max": args.p99_ms, "lost": 0, "duplicated": 0},
        "git_sha": git_sha(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "method": __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
        "cpu_ms_per_call_headline_rate_cps": common,
        "setup": setup, "rows": counts, "agents": args.agents, "chats": args.chats,
        "chat_msgs_per_s": args.chat_msgs, "emails_per_s": args.emails,
        "measured_s_per_rate": args.duration_s, "settle_s": args.settle_s,
        "baseline": {"note": "lowest rate with the fewest processes, same run",
                     "rate_cps": base_row["rate_cps"], "screen_pop": base_row["screen_pop"],
                     "cpu_ms_per_call": base_row["cpu_ms_per_call"]},
        "runs": runs,
    })


if __name__ == "__main__":
    main()
