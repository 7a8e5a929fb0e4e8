"""A routing process for the multi-process tests of the Redis store (run as a subprocess).

``python -m tests.callcenter.routing_redis_worker '<json>'``: builds an Engine on a RedisStore with
the shared prefix, feeds it its share of the contacts (every n-th), plays the agents: accepts each
offer a few steps later and finishes it a few steps after that, and ticks now and then. Every
decision it sees goes to its log file (flushed after every engine call):

    A cid            arrived (written before the engine call)
    O cid aid ch     offered
    R cid aid        requeued
    E cid outcome    ended
    S cid what       refused as stale (expected only with the non-atomic store)
    V what           an invariant observed broken (capacity or mixing)

Capacity is observed from outside the store too: each offer increments ``obs:a:<agent>`` (a hash
channel -> count) after the claim, and each finish decrements it before the engine frees the
slot, so the observed load is never above the real one; an observed load that breaks the mixing
rules is a real violation. Also included: the deliberately non-atomic store (check, then claim,
in two round trips) that the tests expect to fail.
"""
from __future__ import annotations

import heapq
import json
import os
import random
import signal
import sys
import time
from typing import Any, TextIO

from callcenter.routing_redis import _PRELUDE, RedisStore, _Script, connect
from routing import (
    AgentPresence,
    AgentProfile,
    BadInput,
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    Decision,
    Ended,
    Engine,
    EngineConfig,
    MixingRules,
    Offer,
    OfferAccepted,
    Presence,
    QueueConfig,
    Requeue,
    can_take,
)
from routing.model import CHANNELS

QUEUES = {
    "sales": QueueConfig("sales", skills={"sales": 1}),
    "support": QueueConfig("support", skills={"support": 1}),
}


def config(ring_timeout_s: float) -> EngineConfig:
    return EngineConfig(queues=QUEUES, ring_timeout_s=ring_timeout_s, not_ready_on_no_answer=False,
                        not_ready_on_decline=False, retry_same_agent_s=0.0)


def agent_profiles(n: int) -> list[AgentProfile]:
    skills = ({"sales": 5, "support": 5}, {"sales": 5}, {"support": 5})
    return [AgentProfile(f"ag{i:03d}", skills[i % 3]) for i in range(n)]


def contact_plan(i: int) -> tuple[str, Channel, str]:
    """Contact i: (id, channel, queue); the same in every process."""
    r = random.Random(i)
    x = r.random()
    ch = Channel.VOICE if x < 0.5 else Channel.CHAT if x < 0.8 else Channel.EMAIL
    return f"c{i:05d}", ch, "sales" if r.random() < 0.5 else "support"


def valid_load(load: dict[str, int], rules: MixingRules) -> bool:
    """A load that can be reached by offers each allowed by can_take."""
    for ch in CHANNELS:
        n = load.get(ch.value, 0)
        if n <= 0:
            continue
        if n > rules.capacity.get(ch, 0):
            return False
        for other in rules.blocked_by.get(ch, ()):
            if other is ch:
                if n > 1:
                    return False
            elif load.get(other.value, 0) > 0:
                return False
    total = sum(max(0, v) for v in load.values())
    return rules.max_total is None or total <= rules.max_total


# The non-atomic claim: the check is done in Python on what a first round trip read; this
# second script then claims without checking anything.
_FORCE_CLAIM = r"""
unlink(ARGV[1], KEYS[1], KEYS[4])
redis.call('HSET', KEYS[1], 'st', 'offered', 'ag', ARGV[3], 'lu', ARGV[5])
redis.call('HSET', KEYS[2], 's:' .. ARGV[2], ARGV[4] .. '|reserved')
redis.call('HINCRBY', KEYS[2], 'l:' .. ARGV[4], 1)
reindex(ARGV[1], ARGV[3], KEYS[2], cjson.decode(ARGV[6]))
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[2])
return 1
"""


class NonAtomicStore(RedisStore):
    """Deliberately wrong: check and claim in two round trips (what WATCH-less code does)."""

    gap_s = 0.0005  # stands for a slower network between the two round trips

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._s_force = _Script(_FORCE_CLAIM)
        assert _PRELUDE in self._s_force.source

    def claim(self, contact_id: str, agent_id: str, channel: Channel, lease_until: float, now: float) -> bool:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self._ck(contact_id), "st")
        pipe.hgetall(self._ak(agent_id))
        st, h = pipe.execute()
        if st != "waiting" or not h or h.get("pr") != "ready":
            return False
        load = {ch: int(h[f"l:{ch.value}"]) for ch in CHANNELS}
        cap = None if not h.get("cap") else {Channel(k): v for k, v in json.loads(h["cap"]).items()}
        if not can_take(load, channel, self.rules, cap):
            return False
        time.sleep(self.gap_s)
        self._run(self._s_force, [self._ck(contact_id), self._ak(agent_id), self._k_ls, self._k_nw], [
            self.base, contact_id, agent_id, channel.value, float(lease_until), self._rules_s])
        rec = self._local(contact_id)
        if rec is not None:
            rec.status, rec.agent_id = rec.status.OFFERED, agent_id
        return True


class DyingStore(RedisStore):
    """Kills its own process with SIGKILL right after a successful claim once ``die`` is set:
    the contact is OFFERED with a lease, but no RING timer, and no process knows of the offer."""

    die = False
    log: TextIO | None = None

    def claim(self, contact_id: str, agent_id: str, channel: Channel, lease_until: float, now: float) -> bool:
        ok = super().claim(contact_id, agent_id, channel, lease_until, now)
        if ok and self.die:
            if self.log is not None:
                self.log.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return ok


STORE_KINDS: dict[str, type[RedisStore]] = {
    "lua": RedisStore, "nonatomic": NonAtomicStore, "dying": DyingStore}


class Clock:
    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.last = 0.0

    def __call__(self) -> float:
        self.last = max(self.last, time.time() - self.t0)
        return self.last


class Player:
    """Plays the agents of the offers this process makes, and logs every decision."""

    def __init__(self, engine: Engine, store: RedisStore, log: TextIO, obs: str, seed: int,
                 accept_steps: int, hold_steps: int, clock: Clock) -> None:
        self.engine, self.store, self.log, self.obs = engine, store, log, obs
        self.r = store.client
        self.rng = random.Random(seed)
        self.accept_steps, self.hold_steps = accept_steps, hold_steps
        self.clock = clock
        self.step = 0
        self.to_accept: list[tuple[int, str, str, str]] = []
        self.to_finish: list[tuple[int, str, str, str]] = []
        self.rules = engine.config.mixing

    def absorb(self, ds: list[Decision]) -> None:
        w = self.log.write
        for d in ds:
            if isinstance(d, Offer):
                w(f"O {d.contact_id} {d.agent_id} {d.channel.value}\n")
                if self.obs:
                    pipe = self.r.pipeline(transaction=False)
                    pipe.hincrby(self.obs + d.agent_id, d.channel.value, 1)
                    pipe.hgetall(self.obs + d.agent_id)
                    _, load = pipe.execute()
                    if not valid_load({k: int(v) for k, v in load.items()}, self.rules):
                        self.r.set(self.obs + "stop", "1")  # caught: the others may stop early
                        w(f"V offer {d.contact_id} {d.agent_id} {json.dumps(load, separators=(',', ':'))}\n")
                due = self.step + self.rng.randint(0, self.accept_steps)
                heapq.heappush(self.to_accept, (due, d.contact_id, d.agent_id, d.channel.value))
            elif isinstance(d, Requeue):
                w(f"R {d.contact_id} {d.agent_id}\n")
            elif isinstance(d, Ended):
                w(f"E {d.contact_id} {d.outcome.value}\n")

    def handle(self, event: Any) -> bool:
        try:
            self.absorb(self.engine.handle(event, self.clock()))
            return True
        except BadInput as e:
            self.log.write(f"S {getattr(event, 'contact_id', '-')} {type(e).__name__}\n")
            return False

    def due_work(self, everything: bool = False) -> None:
        while self.to_accept and (everything or self.to_accept[0][0] <= self.step):
            _, cid, aid, ch = heapq.heappop(self.to_accept)
            if self.handle(OfferAccepted(cid, aid)):
                due = self.step + self.rng.randint(0, self.hold_steps)
                heapq.heappush(self.to_finish, (due, cid, aid, ch))
            elif self.obs:
                self.r.hincrby(self.obs + aid, ch, -1)
        while self.to_finish and (everything or self.to_finish[0][0] <= self.step):
            _, cid, aid, ch = heapq.heappop(self.to_finish)
            if self.obs:
                self.r.hincrby(self.obs + aid, ch, -1)  # before the slot is freed
            self.handle(ContactFinished(cid, aid, wrap_up_s=0.0))

    def tick(self) -> None:
        self.absorb(self.engine.tick(self.clock()))

    def audit(self) -> None:
        """The store's own loads, read for every agent: none may break capacity or mixing."""
        ids = sorted(self.r.smembers(self.store.base + "ags"))
        pipe = self.r.pipeline(transaction=False)
        for aid in ids:
            pipe.hmget(self.store.base + "a:" + aid, "l:voice", "l:chat", "l:email")
        for aid, row in zip(ids, pipe.execute(), strict=True):
            load = {ch.value: int(v or 0) for ch, v in zip(CHANNELS, row, strict=True)}
            if not valid_load(load, self.rules) or min(load.values()) < 0:
                self.log.write(f"V audit {aid} {json.dumps(load, separators=(',', ':'))}\n")


def setup(url: str, prefix: str, n_agents: int, ring_timeout_s: float, t0: float) -> None:
    """Create the agents, all ready (before the workers start)."""
    store = RedisStore(connect(url), prefix, config(ring_timeout_s).mixing)
    engine = Engine(config(ring_timeout_s), store)
    now = time.time() - t0
    for p in agent_profiles(n_agents):
        engine.add_agent(p, now)
        engine.handle(AgentPresence(p.id, Presence.READY), now)
    store.client.close()


def run(args: dict[str, Any]) -> None:
    w, n_workers = args["worker"], args["workers"]
    kind = STORE_KINDS[args["store"]]
    clock = Clock(args["t0"])
    store = kind(connect(args["url"]), args["prefix"], config(args["ring_timeout_s"]).mixing,
                 lease_grace_s=args["grace_s"])
    engine = Engine(config(args["ring_timeout_s"]), store)
    with open(args["log"], "w") as log:
        if isinstance(store, DyingStore):
            store.log = log
        obs = args["prefix"] + "obs:a:" if args.get("observe", True) else ""
        p = Player(engine, store, log, obs, 1000 + w, args["accept_steps"],
                   args["hold_steps"], clock)
        mine = range(w, args["contacts"], n_workers)
        kill_at = args.get("kill_at")
        for i, n in enumerate(mine):
            cid, ch, q = contact_plan(n)
            log.write(f"A {cid}\n")
            dying = kill_at is not None and i >= kill_at and isinstance(store, DyingStore)
            store.die = dying  # only while a contact arrives: its claim is the last thing done
            p.handle(ContactArrived(Contact(cid, ch, q, clock())))
            store.die = False
            p.step += 1
            p.due_work()
            if p.step % 25 == 0:
                p.tick()
                if obs and store.client.exists(obs + "stop"):
                    log.write("STOPPED\n")
                    break  # a violation was seen: the run has failed anyway
            if p.step % 500 == 0:
                p.audit()
            log.flush()
        while p.to_accept or p.to_finish:
            p.step += 1
            p.due_work()
            if p.step % 25 == 0:
                p.tick()
            log.flush()
        p.tick()
        p.audit()
        log.write("DONE\n")
    store.client.close()


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
