"""`callcenter run --workers N`: N `callcenter run` processes on ports PORT..PORT+N-1 (FastAGI on
AGI_PORT..AGI_PORT+N-1), sharing CC_DATABASE_URL and CC_REDIS_URL, so they form one center. This
parent only starts them, passes SIGINT/SIGTERM on, and starts again one that died (after a
second, then longer)."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any


def child_argv(args: argparse.Namespace, i: int, port: int) -> list[str]:
    argv = [sys.executable, "-m", "callcenter.cli"]
    if args.config:
        argv += ["--config", args.config]
    argv += ["run", "--port", str(port + i)]
    if args.host:
        argv += ["--host", args.host]
    if args.ami:
        argv += ["--ami", args.ami]
    if args.ami_user:
        argv += ["--ami-user", args.ami_user]
    if args.ami_secret_file:
        argv += ["--ami-secret-file", args.ami_secret_file]
    if args.agi_port is not None:
        argv += ["--agi-port", str(args.agi_port + i)]
    if args.no_demo:
        argv.append("--no-demo")
    return argv


def run_workers(settings: Any, args: argparse.Namespace, port: int) -> int:
    from callcenter.cli import CliError

    if not settings.redis.url:
        raise CliError("--workers needs Redis: set CC_REDIS_URL (docs/deploy.md)")
    if not args.ami and not args.no_demo:
        raise CliError("--workers needs --ami HOST:PORT (a PBX shared by the workers) or --no-demo")
    if port == 0:
        raise CliError("--workers needs a fixed --port (workers take PORT, PORT+1, ...)")
    env = {**os.environ, "CC_SCALEOUT__ENABLED": "true"}
    procs: list[subprocess.Popen[bytes] | None] = [None] * args.workers
    restarts = [0] * args.workers
    stopping = False

    def stop(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"callcenter: starting {args.workers} workers on ports {port}..{port + args.workers - 1}",
          flush=True)
    next_start = [0.0] * args.workers
    while not stopping:
        now = time.monotonic()
        for i, p in enumerate(procs):
            if p is not None and p.poll() is None:
                continue
            if p is not None:
                print(f"callcenter: worker {i} exited ({p.returncode}); starting it again", flush=True)
                restarts[i] += 1
                next_start[i] = now + min(30.0, 2.0 ** min(restarts[i], 5))
                procs[i] = None
            if now >= next_start[i]:
                procs[i] = subprocess.Popen(child_argv(args, i, port), env=env)
        time.sleep(0.5)
    for p in procs:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for p in procs:
        if p is not None:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
    return 0
