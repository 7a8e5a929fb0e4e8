"""`callcenter replay`: what-if simulation of a day of traffic through the real routing engine.

The simulation itself is pure and lives in :mod:`routing.replay`; this module reads the plan
(YAML and/or options), shows a tqdm progress bar, and prints a table (and optionally JSON).

Wired in callcenter/cli.py with ``register(sub)``; the handler follows the ``func(settings, args)``
pattern and ignores the settings.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from routing.errors import ConfigError
from routing.model import QueueConfig, ServiceLevel
from routing.replay import Interval, ReplayPlan, ReplayReport, Traffic, plan_from_data, run_replay


def register(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="simulate a day of traffic through the routing engine (what-if)",
        description="Simulate Poisson arrivals, handle times and abandonment per interval through the "
                    "real routing engine on a simulated clock; report SL, ASA, abandonment, occupancy "
                    "and per-tier waits. Options override the plan file.")
    p.add_argument("--plan", type=Path, help="YAML plan (see config/replay/example.yaml)")
    p.add_argument("--intervals", type=int, help="number of intervals (default 16, without --plan)")
    p.add_argument("--interval-minutes", type=float, help="interval length (default 30)")
    p.add_argument("--arrivals", type=float, help="expected arrivals per interval, every interval")
    p.add_argument("--agents", type=int, help="agents per interval, every interval")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every interval's arrivals (what-if)")
    p.add_argument("--staff-scale", type=float, default=1.0, help="multiply every interval's agents")
    p.add_argument("--aht", type=float, help="mean handle time, seconds (default 240)")
    p.add_argument("--handle-dist", choices=["exponential", "lognormal"])
    p.add_argument("--sigma", type=float, help="log-normal shape (default 0.5)")
    p.add_argument("--patience", type=float, help="mean patience before abandoning, seconds")
    p.add_argument("--sl-seconds", type=float, help="service level threshold, seconds (default 20)")
    p.add_argument("--seed", type=int)
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)
    return p


def build_plan(args: argparse.Namespace) -> tuple[ReplayPlan, float]:
    """The plan and the clock time of its first interval (seconds after midnight)."""
    data: dict[str, Any] = {}
    if args.plan is not None:
        try:
            loaded = yaml.safe_load(args.plan.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read {args.plan}: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.plan}: expected a mapping")
        data = loaded
    if not data.get("intervals"):
        n = args.intervals or 16
        data["intervals"] = [{"arrivals": args.arrivals if args.arrivals is not None else 300,
                              "agents": args.agents if args.agents is not None else 12}] * n
    elif args.intervals:
        data["intervals"] = list(data["intervals"])[: args.intervals]
    if args.interval_minutes:
        data["interval_s"] = args.interval_minutes * 60
    handle = dict(data.get("handle_time") or {})
    if args.aht is not None:
        handle["mean_s"] = args.aht
    if args.handle_dist:
        handle["distribution"] = args.handle_dist
    if args.sigma is not None:
        handle["sigma"] = args.sigma
    data["handle_time"] = handle
    if args.patience is not None:
        data["patience"] = {"mean_s": args.patience}
    if args.seed is not None:
        data["seed"] = args.seed
    start = _start_offset(data.pop("start", "00:00"))
    plan = plan_from_data(data)
    intervals = tuple(
        Interval((args.arrivals if args.arrivals is not None else iv.arrivals) * args.scale,
                 round((args.agents if args.agents is not None else iv.agents) * args.staff_scale))
        for iv in plan.intervals)
    queues = plan.queues
    if args.sl_seconds is not None:
        queues = {name: QueueConfig(**{**q.__dict__, "service_level": ServiceLevel(
            q.service_level.fraction, args.sl_seconds)}) for name, q in queues.items()}
    return ReplayPlan(**{**plan.__dict__, "intervals": intervals, "queues": queues,
                         "traffic": tuple(Traffic(t.queue, t.channel, t.share) for t in plan.traffic)}), start


def _start_offset(text: object) -> float:
    try:
        hh, mm = str(text).split(":")
        return int(hh) * 3600 + int(mm) * 60
    except ValueError:
        raise ConfigError(f"start: expected HH:MM, got {text!r}") from None


def format_report(r: ReplayReport, plan: ReplayPlan, start_s: float = 0.0) -> str:
    lines = [
        f"Contacts       {r.contacts:>10,}",
        f"Answered       {r.answered:>10,}",
        f"Abandoned      {r.abandoned:>10,}  ({r.abandonment:.1%})",
        f"Timed out      {r.timed_out:>10,}",
        f"Called back    {r.called_back:>10,}",
        f"Service level  {r.service_level:>10.1%}  answered within {r.sl_seconds:g} s "
        f"(of answered: {r.service_level_answered:.1%})",
        f"ASA            {r.asa_s:>10.1f} s",
        f"Occupancy      {r.occupancy:>10.1%}",
        "",
        f"{'tier':<10}{'contacts':>10}{'answered':>10}{'abandoned':>10}{'mean wait':>11}{'p90 wait':>10}",
    ]
    for tier, s in r.per_tier.items():
        lines.append(f"{tier:<10}{s['contacts']:>10,.0f}{s['answered']:>10,.0f}{s['abandoned']:>10,.0f}"
                     f"{s['mean_wait_s']:>10.1f}s{s['p90_wait_s']:>9.1f}s")
    header = f"{'interval':<10}{'start':>8}{'agents':>8}{'arrivals':>10}{'SL':>8}{'ASA':>9}{'aband.':>8}"
    lines += ["", header]
    for iv in r.per_interval:
        start = (iv["start_s"] + start_s) % 86400
        hhmm = f"{int(start // 3600):02d}:{int(start % 3600 // 60):02d}"
        lines.append(f"{int(iv['interval']):<10}{hhmm:>8}{iv['agents']:>8.0f}{iv['arrivals']:>10.0f}"
                     f"{iv['service_level']:>8.1%}{iv['asa_s']:>8.1f}s{iv['abandoned']:>8.0f}")
    return "\n".join(lines)


def cmd_replay(settings: object, args: argparse.Namespace) -> int:
    try:
        plan, start = build_plan(args)
    except ConfigError as e:
        print(f"callcenter replay: {e}", file=sys.stderr)
        return 2
    if args.quiet:
        report = run_replay(plan)
    else:
        from tqdm import tqdm

        with tqdm(total=int(plan.expected_contacts), unit="contact", desc="replay", file=sys.stderr) as bar:
            report = run_replay(plan, progress=bar.update)
    print(format_report(report, plan, start))
    if args.json:
        text = json.dumps(report.to_dict(), indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0
