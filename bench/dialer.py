"""bench/dialer.py: a predictive campaign against the Asterisk simulator, against progressive dialing.

The simulator runs in a separate process (AMI over TCP) with scripted outbound outcomes: a person
answers at the given rate, 10 % machines, 10 % busy, the rest ring out. 200 agents (simulated
phones that answer and stay until the customer hangs up; talk time exponential, mean 120 s, then
10 s wrap-up). The dialer (callcenter/services/dialer.py) runs in this process through the real
AMI client. Handle times run on an accelerated clock (the simulator's ScaledClock, same scale in
both processes): `--scale 0.2` makes a virtual minute last 12 real seconds. For each answer rate,
predictive then progressive run in the same invocation, on the same script seed.

    .venv/bin/python bench/dialer.py [--agents 200] [--minutes 10] [--scale 0.2]

Also reported: the pure outbound replay (callcenter/services/dialer_replay.py) for the same plan,
over 4 virtual hours, as the model's cross-check of the live figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import git_sha, summary, write_result  # noqa: E402


def _sim_proc(
    answer: float, agents: int, scale: float, seed: int, talk_s: float, port_out: Any, stop: Any
) -> None:
    from callcenter.asterisk.simulator import Simulator
    from callcenter.asterisk.simulator.outbound import OutboundScript

    async def main() -> None:
        sim = Simulator(agi_target=None, time_scale=scale)
        sim.outbound(
            OutboundScript(answer=answer, machine=0.1, busy=0.1, ring_s=10, talk_s=talk_s, seed=seed)
        )
        for i in range(agents):
            sim.agent(f"ag{i}", answer_after=0.5, talk_time=None)
        await sim.start()
        port_out.send(sim.ami_port)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stop.wait)
        await sim.close()

    asyncio.run(main())


async def _campaign(
    port: int, mode: str, agents: int, minutes: float, scale: float, warmup_s: float
) -> dict[str, Any]:
    from callcenter.asterisk.ami_client import AMIClient
    from callcenter.asterisk.simulator.clock import ScaledClock
    from callcenter.services.dialer_drive import drive

    clock = ScaledClock(scale)
    client = AMIClient(
        "127.0.0.1", port, "cc", "ccsecret", ping_interval=None, reconnect=False, action_timeout=30.0
    )
    await client.start()
    await client.wait_connected(10)
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        r = await drive(
            client,
            mode=mode,
            agents=agents,
            duration_s=minutes * 60,
            now=clock.now,
            sleep=clock.sleep,
            wrap_s=10.0,
            prefix=f"cc-{mode}",
            warmup_s=warmup_s,
        )
    finally:
        await client.close()
    out = r.to_dict()
    out["originate_response"] = summary(r.originate_ms)
    out["real_s"] = round(time.perf_counter() - t0, 1)
    out["dialer_cpu_s"] = round(time.process_time() - cpu0, 1)
    return out


def run_rate(answer: float, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {}
    for mode in ("predictive", "progressive"):
        recv, send = ctx.Pipe(duplex=False)
        stop = ctx.Event()
        p = ctx.Process(
            target=_sim_proc, args=(answer, args.agents, args.scale, args.seed, args.talk_s, send, stop)
        )
        p.start()
        port = recv.recv()
        try:
            out[mode] = asyncio.run(
                _campaign(port, mode, args.agents, args.minutes, args.scale, args.warmup_s)
            )
        finally:
            stop.set()
            p.join(30)
            if p.is_alive():
                p.terminate()
        print(f"answer {answer:.0%} {mode}: {out[mode]}", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10.0, help="virtual minutes per campaign run")
    ap.add_argument("--scale", type=float, default=0.2, help="real seconds per virtual second")
    ap.add_argument("--talk-s", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--warmup-s", type=float, default=300.0, help="virtual seconds before measuring")
    args = ap.parse_args()
    load_before = os.getloadavg()
    runs = {f"{int(a * 100)}": run_rate(a, args) for a in (0.2, 0.4)}
    load_after = os.getloadavg()

    from callcenter.services.dialer_replay import OutboundPlan, run_outbound

    replay = {}
    for a in (0.2, 0.4):
        for mode in ("predictive", "progressive"):
            rep = run_outbound(
                OutboundPlan(
                    agents=args.agents,
                    answer_rate=a,
                    mode=mode,
                    duration_s=4 * 3600,
                    handle_mean_s=args.talk_s,
                    wrap_up_s=10.0,
                    ring_mean_s=10.0,
                    seed=args.seed,
                )
            )
            replay[f"{mode}_{int(a * 100)}"] = {
                k: round(v, 4) if isinstance(v, float) else v for k, v in rep.to_dict().items()
            }

    def pick(rate: str, mode: str, key: str) -> float:
        return float(runs[rate][mode][key])

    headline = {
        "abandon_rate_pct_20": round(100 * pick("20", "predictive", "abandon_rate"), 2),
        "abandon_rate_pct_40": round(100 * pick("40", "predictive", "abandon_rate"), 2),
        "occupancy_predictive_20": round(pick("20", "predictive", "occupancy"), 3),
        "occupancy_progressive_20": round(pick("20", "progressive", "occupancy"), 3),
        "occupancy_predictive_40": round(pick("40", "predictive", "occupancy"), 3),
        "occupancy_progressive_40": round(pick("40", "progressive", "occupancy"), 3),
        "connects_per_agent_hour_predictive_20": round(
            pick("20", "predictive", "connects_per_agent_hour"), 1
        ),
        "connects_per_agent_hour_progressive_20": round(
            pick("20", "progressive", "connects_per_agent_hour"), 1
        ),
        "connects_ratio_predictive_vs_progressive_20": round(
            pick("20", "predictive", "connects_per_agent_hour")
            / pick("20", "progressive", "connects_per_agent_hour"),
            3,
        ),
        "connects_ratio_predictive_vs_progressive_40": round(
            pick("40", "predictive", "connects_per_agent_hour")
            / pick("40", "progressive", "connects_per_agent_hour"),
            3,
        ),
        "abandon_cap_pct": 3.0,
        # every rolling window from the cold start (warm-up and first window included)
        "worst_window_abandon_rate_pct_20": round(
            100 * pick("20", "predictive", "worst_window_abandon_rate"), 2
        ),
        "worst_window_abandon_rate_pct_40": round(
            100 * pick("40", "predictive", "worst_window_abandon_rate"), 2
        ),
    }
    result = {
        "headline": headline,
        "git_sha": git_sha(),
        "setup": {
            "agents": args.agents,
            "virtual_minutes_per_run": args.minutes,
            "time_scale": args.scale,
            "talk_s_mean": args.talk_s,
            "wrap_s": 10.0,
            "ring_s_mean": 10.0,
            "machine": 0.1,
            "busy": 0.1,
            "hold_s_before_abandon": 2.0,
            "window_s": 300,
            "seed": args.seed,
            "warmup_s": args.warmup_s,
            "measured": "after the warm-up (cold start excluded)",
            "clock": "accelerated: the simulator's ScaledClock in both processes (handle, ring and "
            "wrap-up times are virtual seconds)",
            "simulator": "separate process, AMI over TCP",
        },
        "runs": runs,
        "replay_4h": replay,
        "notes": "Abandon rates and occupancy cover the measured minutes after the warm-up. "
        "max_window_abandon_rate is the worst rolling window from 1 minute after the warm-up (it can still "
        "hold warm-up abandons). worst_window_abandon_rate: the worst rolling window (5 min) at any tick "
        "from the cold start, the first window included. replay_4h: the pure outbound replay of the same "
        "plan over 4 virtual hours.",
        "load": {
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "cpus": os.cpu_count(),
            "note": "shared 2-core machine with other engineers' tests running",
        },
    }
    write_result("dialer", result)


if __name__ == "__main__":
    main()
