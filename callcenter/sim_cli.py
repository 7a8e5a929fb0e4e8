# ruff: noqa: E501
"""``callcenter sim``: run the Asterisk simulator standalone (AMI server + FastAGI client).

Example: ``callcenter sim --ami-port 5038 --agi agi://127.0.0.1:4573 --rate 0.5 --calls 20
--digits 1 --agents 1001,1002 --no-answer 1002`` runs the shipped dialplan with 20 calls at one
call every 2 s.  The lead registers it in cli.py with ``sim_cli.register(subparsers)``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sim", help="run the Asterisk simulator (AMI server + FastAGI client)")
    p.add_argument("--ami-host", default="127.0.0.1")
    p.add_argument("--ami-port", type=int, default=5038)
    p.add_argument("--ami-user", default="cc")
    p.add_argument("--ami-secret", default="ccsecret")
    p.add_argument("--agi", default="agi://127.0.0.1:4573", help="FastAGI target (CC_AGI)")
    p.add_argument("--dialplan", default=None, help="extensions.conf to run (default: the shipped one)")
    p.add_argument("--queues", default=None, help="queues.conf (default: the shipped one)")
    p.add_argument("--rate", type=float, default=0.0, help="calls per second (0: no traffic)")
    p.add_argument("--calls", type=int, default=0, help="number of calls (with --rate)")
    p.add_argument("--caller-ids", default="+14155550100", help="comma-separated caller IDs, used in turn")
    p.add_argument("--digits", default="", help="comma-separated digits pressed, one entry per prompt")
    p.add_argument("--hangup-after", type=float, default=None, help="callers hang up after N seconds")
    p.add_argument("--agents", default="", help="comma-separated agent numbers that answer")
    p.add_argument("--no-answer", default="", help="comma-separated agents who never answer")
    p.add_argument("--busy", default="", help="comma-separated agents who are busy")
    p.add_argument("--talk-time", type=float, default=30.0)
    p.add_argument("--time-scale", type=float, default=1.0, help="real seconds per simulated second")
    p.add_argument("--duration", type=float, default=None, help="stop after N real seconds")
    p.set_defaults(func=run)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


async def _main(args: argparse.Namespace) -> int:
    from callcenter.asterisk.simulator import Simulator

    kwargs: dict[str, Any] = {}
    if args.dialplan:
        kwargs["dialplan"] = args.dialplan
    if args.queues:
        kwargs["queues"] = args.queues
    sim = Simulator(agi_target=args.agi, time_scale=args.time_scale, ami_host=args.ami_host,
                    ami_port=args.ami_port, ami_users={args.ami_user: args.ami_secret}, **kwargs)
    for n in _split(args.agents):
        sim.agent(n, talk_time=args.talk_time)
    for n in _split(args.no_answer):
        sim.agent(n, never_answer=True)
    for n in _split(args.busy):
        sim.agent(n, busy=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(f"simulator: AMI on {args.ami_host}:{sim.ami_port}, FastAGI target {args.agi}", flush=True)
        if args.rate > 0 and args.calls > 0:
            sim.traffic(rate=args.rate, count=args.calls, caller_ids=_split(args.caller_ids) or ["+14155550100"],
                        digits=_split(args.digits), hangup_after=args.hangup_after)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(sim.ami.shutdown_done.wait())]
        if args.duration is not None:
            waiters.append(asyncio.ensure_future(asyncio.sleep(args.duration)))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
    return 0


def run(settings: Any, args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
