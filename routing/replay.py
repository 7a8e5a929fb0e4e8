"""What-if replay: a day of simulated traffic through the real engine, on a simulated clock.

A pure discrete-event simulation: Poisson arrivals per interval (piecewise-constant rate),
exponential or log-normal handle times, exponential patience (abandonment), and a staffing plan
per interval. Every routing decision is made by :class:`routing.engine.Engine`; the simulation
only plays the customers and the agents (agents accept every offer at once, customers accept a
callback with a given probability). Randomness comes from one seeded ``random.Random``.
"""
from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.config import parse_queue
from routing.engine import Engine
from routing.errors import ConfigError
from routing.events import (
    AgentPresence,
    CallbackAccepted,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    Decision,
    Ended,
    Offer,
    OfferAccepted,
    OfferCallback,
)
from routing.model import (
    AgentProfile,
    Channel,
    Contact,
    ContactStatus,
    EngineConfig,
    MixingRules,
    Presence,
    PriorityConfig,
    QueueConfig,
    Tier,
)


@dataclass(frozen=True)
class Interval:
    arrivals: float  # expected arrivals in the interval
    agents: int  # agents logged in and ready


@dataclass(frozen=True)
class Traffic:
    """A share of the arrivals, sent to one queue on one channel."""

    queue: str
    channel: Channel = Channel.VOICE
    share: float = 1.0


@dataclass(frozen=True)
class ReplayPlan:
    intervals: tuple[Interval, ...]
    queues: Mapping[str, QueueConfig]
    traffic: tuple[Traffic, ...]
    interval_s: float = 1800.0
    handle_dist: str = "exponential"  # or "lognormal"
    handle_mean_s: float = 240.0
    handle_sigma: float = 0.5  # log-normal shape (sigma of the underlying normal)
    patience_mean_s: float | None = None  # exponential patience; None: nobody abandons
    tiers: Mapping[Tier, float] = field(
        default_factory=lambda: {Tier.VIP: 0.0, Tier.KEY: 0.0, Tier.REGULAR: 1.0})
    callback_accept: float = 0.5
    agent_proficiency: int = 5
    wrap_up_s: float = 0.0
    warmup_s: float = 0.0  # contacts arriving earlier are left out of the statistics
    seed: int = 1
    priority: PriorityConfig = PriorityConfig()
    mixing: MixingRules = MixingRules()

    def __post_init__(self) -> None:
        if not self.intervals:
            raise ConfigError("replay: no intervals")
        if self.interval_s <= 0 or self.handle_mean_s <= 0:
            raise ConfigError("replay: interval_s and handle_mean_s must be > 0")
        if self.handle_dist not in ("exponential", "lognormal"):
            raise ConfigError(f"replay: unknown handle time distribution {self.handle_dist!r}")
        for t in self.traffic:
            if t.queue not in self.queues:
                raise ConfigError(f"replay: traffic to unknown queue {t.queue!r}")
        if not self.traffic or sum(t.share for t in self.traffic) <= 0:
            raise ConfigError("replay: traffic shares must add up to more than 0")
        if sum(self.tiers.values()) <= 0:
            raise ConfigError("replay: tier shares must add up to more than 0")
        for iv in self.intervals:
            if iv.arrivals < 0 or iv.agents < 0:
                raise ConfigError("replay: arrivals and agents must be >= 0")

    @property
    def expected_contacts(self) -> float:
        return sum(iv.arrivals for iv in self.intervals)


@dataclass
class TierStats:
    arrived: int = 0
    answered: int = 0
    abandoned: int = 0
    waits: list[float] = field(default_factory=list)


@dataclass
class ReplayReport:
    contacts: int
    answered: int
    abandoned: int
    timed_out: int
    called_back: int
    service_level: float  # answered within the queue's SL time / (answered + abandoned + others)
    service_level_answered: float  # answered within SL time / answered (the Erlang C definition)
    sl_seconds: float
    asa_s: float
    abandonment: float
    occupancy: float
    per_tier: dict[str, dict[str, float]]
    per_interval: list[dict[str, float]]
    sim_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts, "answered": self.answered, "abandoned": self.abandoned,
            "timed_out": self.timed_out, "called_back": self.called_back,
            "service_level": self.service_level, "service_level_answered": self.service_level_answered,
            "sl_seconds": self.sl_seconds, "asa_s": self.asa_s, "abandonment": self.abandonment,
            "occupancy": self.occupancy, "per_tier": self.per_tier, "per_interval": self.per_interval,
            "sim_seconds": self.sim_seconds,
        }


_ARRIVAL, _FINISH, _ABANDON, _SHIFT = 0, 1, 2, 3


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def run_replay(plan: ReplayPlan, progress: Callable[[int], None] | None = None) -> ReplayReport:
    """Simulate the plan; ``progress(n)`` is called with the number of new arrivals now and then."""
    rng = random.Random(plan.seed)
    config = EngineConfig(queues=plan.queues, mixing=plan.mixing, priority=plan.priority,
                          not_ready_on_no_answer=False, not_ready_on_decline=False,
                          wrap_up_s={ch: plan.wrap_up_s for ch in Channel})
    engine = Engine(config)
    skills: dict[str, int] = {}
    for q in plan.queues.values():
        for name in q.skills:
            skills[name] = max(plan.agent_proficiency, q.skills[name])
    max_agents = max(iv.agents for iv in plan.intervals)
    agent_ids = [f"a{i:05d}" for i in range(max_agents)]
    for aid in agent_ids:
        engine.add_agent(AgentProfile(aid, skills), 0.0)

    traffic = list(plan.traffic)
    t_weights = [t.share for t in traffic]
    tiers = list(plan.tiers)
    tier_w = [plan.tiers[t] for t in tiers]
    horizon = plan.interval_s * len(plan.intervals)
    sl_s = min(q.service_level.seconds for q in plan.queues.values())
    lognorm_mu = math.log(plan.handle_mean_s) - plan.handle_sigma ** 2 / 2

    def handle_time() -> float:
        if plan.handle_dist == "exponential":
            return rng.expovariate(1.0 / plan.handle_mean_s)
        return rng.lognormvariate(lognorm_mu, plan.handle_sigma)

    events: list[tuple[float, int, int, str]] = []
    seq = 0

    def push(t: float, kind: int, subject: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, subject))

    def next_arrival(t: float) -> None:
        # Piecewise-constant Poisson: draw within the current interval, else restart at the next.
        while t < horizon:
            i = int(t // plan.interval_s)
            rate = plan.intervals[i].arrivals / plan.interval_s
            end = (i + 1) * plan.interval_s
            if rate > 0:
                nt = t + rng.expovariate(rate)
                if nt < end:
                    push(nt, _ARRIVAL, "")
                    return
            t = end

    for i in range(len(plan.intervals)):
        push(i * plan.interval_s, _SHIFT, str(i))
    next_arrival(0.0)

    arrived_at: dict[str, float] = {}
    tier_of: dict[str, Tier] = {}
    waiting: set[str] = set()
    busy_time = 0.0
    staffed = 0.0
    logged_in: list[str] = []  # ready or busy, in login order
    logged_set: set[str] = set()
    offline_pool = list(reversed(agent_ids))  # next to log in at the end
    counted = 0
    tstats = {t: TierStats() for t in Tier}
    outcome_count = {s: 0 for s in ContactStatus}
    answered_in_sl = 0
    wait_sum = 0.0
    n_answered = 0
    per_iv = [{"arrivals": 0.0, "answered": 0.0, "in_sl": 0.0, "abandoned": 0.0, "wait_sum": 0.0,
               "agents": float(iv.agents)} for iv in plan.intervals]
    iv_of: dict[str, int] = {}
    n_contacts = 0
    pending_progress = 0

    def perform(decisions: list[Decision], now: float) -> None:
        nonlocal busy_time, answered_in_sl, wait_sum, n_answered
        for d in decisions:
            if isinstance(d, Offer):
                cid = d.contact_id
                waiting.discard(cid)
                engine.handle(OfferAccepted(cid, d.agent_id), now)
                ht = handle_time()
                busy_time += ht
                push(now + ht, _FINISH, cid + "|" + d.agent_id)
                if cid in tier_of:
                    w = now - arrived_at[cid]
                    ts = tstats[tier_of[cid]]
                    ts.answered += 1
                    ts.waits.append(w)
                    n_answered += 1
                    wait_sum += w
                    pi = per_iv[iv_of[cid]]
                    pi["answered"] += 1
                    pi["wait_sum"] += w
                    if w <= sl_s:
                        answered_in_sl += 1
                        pi["in_sl"] += 1
            elif isinstance(d, Ended):
                waiting.discard(d.contact_id)
                if d.contact_id in tier_of:
                    outcome_count[d.outcome] += 1
                    if d.outcome is ContactStatus.ABANDONED:
                        tstats[tier_of[d.contact_id]].abandoned += 1
                        per_iv[iv_of[d.contact_id]]["abandoned"] += 1
                arrived_at.pop(d.contact_id, None)
            elif isinstance(d, OfferCallback):
                if rng.random() < plan.callback_accept:
                    perform(engine.handle(CallbackAccepted(d.contact_id), now), now)

    while events:
        t, _, kind, subject = heapq.heappop(events)
        due = engine.next_due()
        while due is not None and due <= t:
            perform(engine.tick(due), due)
            due = engine.next_due()
        if kind == _ARRIVAL:
            n_contacts += 1
            cid = f"c{n_contacts}"
            tr = traffic[0] if len(traffic) == 1 else rng.choices(traffic, t_weights)[0]
            tier = tiers[0] if len(tiers) == 1 else rng.choices(tiers, tier_w)[0]
            arrived_at[cid] = t
            if t >= plan.warmup_s:
                counted += 1
                tier_of[cid] = tier
                tstats[tier].arrived += 1
                iv = int(t // plan.interval_s)
                iv_of[cid] = iv
                per_iv[iv]["arrivals"] += 1
            waiting.add(cid)
            if plan.patience_mean_s is not None:
                push(t + rng.expovariate(1.0 / plan.patience_mean_s), _ABANDON, cid)
            perform(engine.handle(ContactArrived(Contact(cid, tr.channel, tr.queue, t, tier=tier)), t), t)
            next_arrival(t)
            pending_progress += 1
            if progress is not None and pending_progress >= 1000:
                progress(pending_progress)
                pending_progress = 0
        elif kind == _FINISH:
            cid, _, aid = subject.partition("|")
            perform(engine.handle(ContactFinished(cid, aid), t), t)
            if aid not in logged_set:
                agent = engine.store.agent(aid)
                if agent is not None and not agent.slots and agent.presence is not Presence.OFFLINE:
                    perform(engine.handle(AgentPresence(aid, Presence.OFFLINE), t), t)
        elif kind == _ABANDON:
            if subject in waiting:
                perform(engine.handle(ContactHungUp(subject), t), t)
        else:  # shift change
            i = int(subject)
            want = plan.intervals[i].agents
            staffed += want * plan.interval_s
            while len(logged_in) < want:
                aid = offline_pool.pop()
                logged_in.append(aid)
                logged_set.add(aid)
                perform(engine.handle(AgentPresence(aid, Presence.READY), t), t)
            while len(logged_in) > want:
                aid = logged_in.pop()
                logged_set.discard(aid)
                offline_pool.append(aid)
                # An agent on a contact finishes it first (goes offline after the FINISH event).
                agent = engine.store.agent(aid)
                if agent is not None and not agent.slots:
                    perform(engine.handle(AgentPresence(aid, Presence.OFFLINE), t), t)
                elif agent is not None:
                    perform(engine.handle(AgentPresence(aid, Presence.NOT_READY, "end-of-shift"), t), t)
    if progress is not None and pending_progress:
        progress(pending_progress)
    # Contacts still waiting at the end of the day abandon.
    end = max(horizon, engine.now)
    for cid in list(waiting):
        perform(engine.handle(ContactHungUp(cid), end), end)

    offered = max(1, counted)
    per_tier: dict[str, dict[str, float]] = {}
    for tier, st in tstats.items():
        if not st.arrived:
            continue
        per_tier[tier.value] = {
            "contacts": st.arrived, "answered": st.answered, "abandoned": st.abandoned,
            "mean_wait_s": sum(st.waits) / len(st.waits) if st.waits else 0.0,
            "p90_wait_s": _pct(st.waits, 0.9), "max_wait_s": max(st.waits, default=0.0),
        }
    per_interval = []
    for i, pi in enumerate(per_iv):
        done = pi["answered"] + pi["abandoned"]
        per_interval.append({
            "interval": i, "start_s": i * plan.interval_s, "agents": pi["agents"], "arrivals": pi["arrivals"],
            "service_level": pi["in_sl"] / done if done else 1.0,
            "asa_s": pi["wait_sum"] / pi["answered"] if pi["answered"] else 0.0,
            "abandoned": pi["abandoned"],
        })
    return ReplayReport(
        contacts=counted,
        answered=n_answered,
        abandoned=outcome_count[ContactStatus.ABANDONED],
        timed_out=outcome_count[ContactStatus.TIMED_OUT],
        called_back=outcome_count[ContactStatus.CALLED_BACK],
        service_level=answered_in_sl / offered,
        service_level_answered=answered_in_sl / n_answered if n_answered else 0.0,
        sl_seconds=sl_s,
        asa_s=wait_sum / n_answered if n_answered else 0.0,
        abandonment=outcome_count[ContactStatus.ABANDONED] / offered,
        occupancy=min(1.0, busy_time / staffed) if staffed else 0.0,
        per_tier=per_tier,
        per_interval=per_interval,
        sim_seconds=end,
    )


def plan_from_data(data: Mapping[str, Any], **overrides: Any) -> ReplayPlan:
    """A plan from parsed YAML (see config/replay/example.yaml); keyword overrides win."""
    try:
        queues = {q.name: q for q in (parse_queue(d) for d in data.get("queues") or ())}
        if not queues:
            queues = {"default": QueueConfig("default", skills={"general": 1})}
        traffic = tuple(
            Traffic(str(t["queue"]), Channel(t.get("channel", "voice")), float(t.get("share", 1.0)))
            for t in data.get("traffic") or ()
        ) or tuple(Traffic(name) for name in queues)
        intervals = tuple(Interval(float(iv["arrivals"]), int(iv["agents"]))
                          for iv in data.get("intervals") or ())
        handle = data.get("handle_time") or {}
        patience = data.get("patience") or {}
        tiers = {Tier(k): float(v) for k, v in (data.get("tiers") or {"regular": 1.0}).items()}
        kwargs: dict[str, Any] = {
            "intervals": intervals, "queues": queues, "traffic": traffic, "tiers": tiers,
            "interval_s": float(data.get("interval_s", 1800)),
            "handle_dist": str(handle.get("distribution", "exponential")),
            "handle_mean_s": float(handle.get("mean_s", 240)),
            "handle_sigma": float(handle.get("sigma", 0.5)),
            "patience_mean_s": None if patience.get("mean_s") is None else float(patience["mean_s"]),
            "callback_accept": float(data.get("callback_accept", 0.5)),
            "wrap_up_s": float(data.get("wrap_up_s", 0.0)),
            "warmup_s": float(data.get("warmup_s", 0.0)),
            "seed": int(data.get("seed", 1)),
        }
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"replay plan: {e!r}") from None
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return ReplayPlan(**kwargs)
