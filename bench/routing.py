"""Routing engine benchmark: decision latency with 2,000 agents and 50 skills at 1k/10k/100k
waiting contacts, against a naive scan-everything baseline; a 500k-contact replay; Erlang C check.

The engine is pure (no I/O): the "client" is the caller of the engine, in this process, and
each latency is one `Engine.handle(event, now)` call timed with perf_counter_ns.

Workload at each size, in steady state:
* 1,500 agents are on a voice call each; 500 agents each have one chat open (they may take
  two more chats, or emails, but no voice: default mixing).
* N voice contacts wait, spread over 60 queues (50 one-skill, 10 two-skill), tiers 5/15/80 %.
* "contact arrives": half voice (no agent free: it is placed in its bucket), half chat (offered
  at once to one of the ~40 chat agents with the skill, by longest idle).
* "agent frees up": a voice agent finishes its call; the engine ends the contact and offers the
  agent the best waiting voice contact among the buckets it may serve.
The untimed glue keeps the state steady (offers accepted, chats finished), so N stays constant.
The naive baseline (this file only) keeps plain lists and scans every agent on arrival and every
waiting contact when an agent frees up, with the same rules and the same event sequence.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from bench.common import git_sha, pct, write_result  # noqa: E402
from routing import (  # noqa: E402
    AgentPresence,
    AgentProfile,
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    Engine,
    EngineConfig,
    Offer,
    OfferAccepted,
    Presence,
    QueueConfig,
    Tier,
    can_take,
)
from routing.erlang import agents_for, asa, service_level  # noqa: E402
from routing.model import DEFAULT_MIXING, PriorityConfig, ServiceLevel  # noqa: E402
from routing.replay import Interval, ReplayPlan, Traffic, plan_from_data, run_replay  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_AGENTS, N_SKILLS, VOICE_AGENTS = 2000, 50, 1500
SKILLS = [f"s{i:02d}" for i in range(N_SKILLS)]
TIERS = [Tier.VIP, Tier.KEY, Tier.REGULAR]
TIER_P = [0.05, 0.15, 0.80]


def make_queues(rng: random.Random) -> dict[str, QueueConfig]:
    qs = {f"q{s}": QueueConfig(f"q{s}", skills={s: 3}) for s in SKILLS}
    for i in range(10):
        a, b = rng.sample(SKILLS, 2)
        qs[f"qq{i}"] = QueueConfig(f"qq{i}", skills={a: 3, b: 3})
    return qs


def make_agents(rng: random.Random) -> list[AgentProfile]:
    return [AgentProfile(f"a{i:04d}", {s: rng.randint(3, 10) for s in rng.sample(SKILLS, 4)})
            for i in range(N_AGENTS)]


# -- naive baseline ------------------------------------------------------------------------------


class Naive:
    """Scan everything: all agents on arrival, all waiting contacts when an agent frees up."""

    def __init__(self, queues: dict[str, QueueConfig], agents: list[AgentProfile]) -> None:
        self.queues = queues
        self.prio = PriorityConfig()
        self.agents = {a.id: {"p": a, "ready": True, "idle": 0.0, "load": {c: 0 for c in Channel}}
                       for a in agents}
        self.waiting: list[dict[str, Any]] = []
        self.holder: dict[str, str] = {}

    def _fits(self, a: dict[str, Any], c: dict[str, Any]) -> bool:
        skills = a["p"].skills
        return all(skills.get(k, 0) >= v for k, v in c["req"].items())

    def _record(self, c: Contact) -> dict[str, Any]:
        return {"id": c.id, "ch": c.channel, "req": dict(self.queues[c.queue].skills),
                "key": self.prio.tier_weights[c.tier] - self.prio.aging_k * c.arrived_at}

    def enqueue(self, c: Contact) -> None:
        """Setup only: the backlog (no agent can take a voice contact then)."""
        self.waiting.append(self._record(c))

    def arrive(self, c: Contact, now: float) -> str | None:
        rec = self._record(c)
        best = None
        for aid, a in self.agents.items():  # scan every agent
            if a["ready"] and can_take(a["load"], c.channel, DEFAULT_MIXING) and self._fits(a, rec):
                if best is None or a["idle"] < self.agents[best]["idle"]:
                    best = aid
        if best is None:
            self.waiting.append(rec)
            return None
        self.agents[best]["load"][c.channel] += 1
        self.holder[c.id] = best
        return best

    def free(self, cid: str, ch: Channel, now: float) -> str | None:
        aid = self.holder.pop(cid)
        a = self.agents[aid]
        a["load"][ch] -= 1
        a["idle"] = now
        best_i = -1
        best_key = -math.inf
        for i, w in enumerate(self.waiting):  # scan every waiting contact
            if w["key"] > best_key and can_take(a["load"], w["ch"], DEFAULT_MIXING) and self._fits(a, w):
                best_i, best_key = i, w["key"]
        if best_i < 0:
            return None
        w = self.waiting[best_i]
        self.waiting[best_i] = self.waiting[-1]
        self.waiting.pop()
        a["load"][w["ch"]] += 1
        self.holder[w["id"]] = aid
        return w["id"]


# -- engine run ----------------------------------------------------------------------------------


def summarize(ns: list[int]) -> dict[str, float]:
    us = [x / 1000 for x in ns]
    return {"n": len(us), "median_us": round(statistics.median(us), 2), "p90_us": round(pct(us, 90), 2),
            "p99_us": round(pct(us, 99), 2), "max_us": round(max(us), 2)}


def run_size(n_waiting: int, ops: int, naive_ops: int, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    queues = make_queues(rng)
    qnames = sorted(queues)
    profiles = make_agents(rng)
    engine = Engine(EngineConfig(queues=queues))
    naive = Naive(queues, profiles)
    now = 0.0
    seq = 0

    def new_contact(ch: Channel, t: float) -> Contact:
        nonlocal seq
        seq += 1
        # a voice contact for a queue whose skill some voice agent has; chats for a one-skill queue
        q = rng.choice(qnames) if ch is Channel.VOICE else f"q{rng.choice(SKILLS)}"
        return Contact(f"c{seq}", ch, q, t, tier=rng.choices(TIERS, TIER_P)[0])

    t0 = time.perf_counter()
    # Every voice agent gets one call, every chat agent one chat: each agent is made ready alone,
    # given its contact, and the chat agents are made ready again at the end.
    voice_calls: list[tuple[str, str]] = []  # (contact, agent)
    for i, p in enumerate(profiles):
        ch = Channel.VOICE if i < VOICE_AGENTS else Channel.CHAT
        engine.add_agent(p, now)
        engine.handle(AgentPresence(p.id, Presence.READY), now)
        seq += 1
        c = Contact(f"c{seq}", ch, f"q{next(iter(p.skills))}", now)
        out = engine.handle(ContactArrived(c), now)
        (o,) = [d for d in out if isinstance(d, Offer)]
        assert o.agent_id == p.id
        engine.handle(OfferAccepted(o.contact_id, o.agent_id), now)
        naive.agents[o.agent_id]["load"][ch] += 1
        naive.holder[c.id] = o.agent_id
        if ch is Channel.VOICE:
            voice_calls.append((c.id, o.agent_id))
        else:
            engine.handle(AgentPresence(p.id, Presence.NOT_READY, "setup"), now)
    for p in profiles[VOICE_AGENTS:]:
        assert not engine.handle(AgentPresence(p.id, Presence.READY), now)
    # the backlog
    for _ in range(n_waiting):
        now += 0.01
        c = new_contact(Channel.VOICE, now)
        out = engine.handle(ContactArrived(c), now)
        assert not any(isinstance(d, Offer) for d in out)
        naive.enqueue(c)
    setup_s = time.perf_counter() - t0
    assert engine.store.waiting_count() == n_waiting

    arrive_ns: list[int] = []
    arrive_voice_ns: list[int] = []
    arrive_chat_ns: list[int] = []
    free_ns: list[int] = []
    naive_arrive_ns: list[int] = []
    naive_free_ns: list[int] = []
    warm = 100
    pc = time.perf_counter_ns
    for i in range(ops + warm):
        now += 0.05
        # contact arrives: a voice one (to the backlog) and a chat (offered at once)
        for ch in (Channel.VOICE, Channel.CHAT):
            c = new_contact(ch, now)
            ev = ContactArrived(c)
            s = pc()
            out = engine.handle(ev, now)
            dt = pc() - s
            if ch is Channel.CHAT:
                offers = [d for d in out if isinstance(d, Offer)]
                assert len(offers) == 1, out
                for o in offers:  # untimed: accept and finish the chat at once, to stay steady
                    engine.handle(OfferAccepted(o.contact_id, o.agent_id), now)
                    engine.handle(ContactFinished(o.contact_id, o.agent_id, 0.0), now)
            if i >= warm:
                arrive_ns.append(dt)
                (arrive_voice_ns if ch is Channel.VOICE else arrive_chat_ns).append(dt)
            if i < naive_ops + warm:
                s = pc()
                got = naive.arrive(c, now)
                dtn = pc() - s
                if got is not None:
                    naive.free(c.id, ch, now)
                if i >= warm:
                    naive_arrive_ns.append(dtn)
        # agent frees up: a voice call ends, the agent takes the best waiting voice contact
        now += 0.05
        k = rng.randrange(len(voice_calls))
        cid, aid = voice_calls[k]
        ev2 = ContactFinished(cid, aid, 0.0)
        s = pc()
        out = engine.handle(ev2, now)
        dt = pc() - s
        offers = [d for d in out if isinstance(d, Offer)]
        assert len(offers) == 1, out
        engine.handle(OfferAccepted(offers[0].contact_id, aid), now)
        voice_calls[k] = (offers[0].contact_id, aid)
        if i >= warm:
            free_ns.append(dt)
        if i < naive_ops + warm:
            naive.holder.setdefault(cid, aid)
            s = pc()
            naive.free(cid, Channel.VOICE, now)
            dtn = pc() - s
            if i >= warm:
                naive_free_ns.append(dtn)
        else:
            naive.holder.pop(cid, None)
    assert abs(engine.store.waiting_count() - n_waiting) <= 1, (engine.store.waiting_count(), n_waiting)
    eng_all = arrive_ns + free_ns
    naive_all = naive_arrive_ns + naive_free_ns
    return {
        "waiting": n_waiting, "agents": N_AGENTS, "skills": N_SKILLS, "queues": len(queues),
        "setup_s": round(setup_s, 2),
        "contact_arrives": summarize(arrive_ns),
        "contact_arrives_voice_enqueued": summarize(arrive_voice_ns),
        "contact_arrives_chat_offered": summarize(arrive_chat_ns),
        "agent_frees_up": summarize(free_ns),
        "all_decisions": summarize(eng_all),
        "naive_contact_arrives": summarize(naive_arrive_ns),
        "naive_agent_frees_up": summarize(naive_free_ns),
        "naive_all_decisions": summarize(naive_all),
        "ratio_naive_over_engine_median": round(statistics.median(naive_all) / statistics.median(eng_all), 1),
    }


def replay_day(total: int) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "config" / "replay" / "example.yaml").read_text())
    data.pop("start", None)
    base = plan_from_data(data)
    f = total / base.expected_contacts
    aht = base.handle_mean_s
    intervals = tuple(
        Interval(iv.arrivals * f, agents_for(iv.arrivals * f * aht / base.interval_s, aht, 0.8, 20))
        for iv in base.intervals)
    plan = ReplayPlan(**{**base.__dict__, "intervals": intervals})
    t0 = time.perf_counter()
    r = run_replay(plan)
    took = time.perf_counter() - t0
    return {"contacts": r.contacts, "wall_s": round(took, 2),
            "max_agents": max(iv.agents for iv in intervals),
            "plan": "config/replay/example.yaml scaled to the contact count, staffed by Erlang C for 80/20",
            "service_level": round(r.service_level, 4), "asa_s": round(r.asa_s, 2),
            "abandonment": round(r.abandonment, 4), "occupancy": round(r.occupancy, 4),
            "called_back": r.called_back, "timed_out": r.timed_out,
            "per_tier_mean_wait_s": {k: round(v["mean_wait_s"], 2) for k, v in r.per_tier.items()}}


def erlang_check(contacts: int, n: int = 12, a: float = 10.0, aht: float = 180.0, t: float = 20.0,
                 seed: int = 5) -> dict[str, Any]:
    hourly = a / aht * 3600
    hours = math.ceil(contacts / hourly) + 1
    plan = ReplayPlan(intervals=tuple(Interval(hourly, n) for _ in range(hours)),
                      queues={"q": QueueConfig("q", skills={"s": 1}, service_level=ServiceLevel(0.8, t))},
                      traffic=(Traffic("q"),), interval_s=3600, handle_mean_s=aht, warmup_s=3600, seed=seed)
    t0 = time.perf_counter()
    r = run_replay(plan)
    sl_f, asa_f = service_level(n, a, aht, t), asa(n, a, aht)
    return {"agents": n, "erlangs": a, "aht_s": aht, "sl_seconds": t, "contacts": r.contacts,
            "wall_s": round(time.perf_counter() - t0, 2),
            "sim_sl": round(r.service_level_answered, 5), "erlang_sl": round(sl_f, 5),
            "sim_asa_s": round(r.asa_s, 3), "erlang_asa_s": round(asa_f, 3),
            "sl_diff_points": round(abs(r.service_level_answered - sl_f) * 100, 3),
            "asa_diff_pct": round(abs(r.asa_s - asa_f) / asa_f * 100, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ops", type=int, default=3000, help="timed events per kind and size")
    ap.add_argument("--naive-ops", type=int, default=300)
    ap.add_argument("--replay", type=int, default=500_000)
    ap.add_argument("--erlang", type=int, default=400_000)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    runs = [run_size(int(n), args.ops, args.naive_ops) for n in args.sizes.split(",")]
    by = {r["waiting"]: r for r in runs}
    day = replay_day(args.replay)
    erl = erlang_check(args.erlang)

    def med(n: int) -> float:
        r = by.get(n)
        return max(r["contact_arrives"]["median_us"], r["agent_frees_up"]["median_us"]) if r else float("nan")

    result = {
        "headline": {
            "median_us_1k": med(1000), "median_us_10k": med(10000), "median_us_100k": med(100000),
            "p99_us_10k": max(by[10000]["contact_arrives"]["p99_us"], by[10000]["agent_frees_up"]["p99_us"])
            if 10000 in by else float("nan"),
            "ratio_vs_naive_10k": by[10000]["ratio_naive_over_engine_median"]
            if 10000 in by else float("nan"),
            "replay_500k_s": day["wall_s"],
            "erlang_sl_diff_points": erl["sl_diff_points"],
            "erlang_asa_diff_pct": erl["asa_diff_pct"],
        },
        "git_sha": git_sha(),
        "method": ("in-process pure-engine timings: the engine does no I/O, so the client is the caller of "
                   "Engine.handle() in this process, timed per call with perf_counter_ns after 100 warm-up "
                   "events; medians/p99 in the headline are the worse of 'contact arrives' and 'agent frees "
                   "up'; the naive baseline runs the same event sequence in the same process; "
                   "ratio = naive median / engine median over both kinds. Python "
                   + sys.version.split()[0] + ", 2-core machine shared with other jobs."),
        "data": {"agents": N_AGENTS, "skills": N_SKILLS, "waiting_sizes": [r["waiting"] for r in runs],
                 "ops_per_kind": args.ops, "naive_ops_per_kind": args.naive_ops,
                 "replay_contacts": args.replay, "erlang_contacts": args.erlang},
        "runs": runs,
        "replay_day": day,
        "erlang_check": erl,
    }
    if args.no_write:
        print(json.dumps(result))
    else:
        write_result("routing", result)


if __name__ == "__main__":
    main()
