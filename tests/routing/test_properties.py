"""Random sequences of arrivals, presence changes, answers, no-answers, hang-ups and time jumps.

Invariants, checked after every step against a shadow model kept by the test:
* no agent beyond capacity or mixing rules (each offer is checked with ``can_take`` on the load
  the test itself tracks);
* no offer to an agent without the required skills at the required proficiency, unless an
  escalation step widened them (the test widens its own copy of the requirement);
* among eligible contacts the highest priority key goes first, and nothing eligible is left
  waiting next to a ready agent (quiescence);
* every contact ends exactly once as handled, abandoned, timed out or called back, and never
  vanishes.
"""
from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import (
    CHANNELS,
    AgentPresence,
    AgentProfile,
    AlertSupervisor,
    BadInput,
    CallbackAccepted,
    Channel,
    Contact,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactStatus,
    Decision,
    Ended,
    Engine,
    EngineConfig,
    Escalate,
    InMemoryStore,
    Offer,
    OfferAccepted,
    OfferCallback,
    OfferCallbackStep,
    OfferDeclined,
    Overflow,
    Presence,
    QueueConfig,
    RaisePriority,
    Requeue,
    Requirement,
    SendTo,
    Strategy,
    Tier,
    WidenSkills,
    can_take,
)

SKILLS = ("a", "b", "c")
N_AGENTS = 4

QUEUES = {
    "q1": QueueConfig("q1", skills={"a": 6}, strategy=Strategy.LONGEST_IDLE, max_wait=400,
                      escalation=(WidenSkills(30, lower_by=3), RaisePriority(60, 50), Overflow(120, "q3"))),
    "q2": QueueConfig("q2", skills={"b": 4, "c": 2}, strategy=Strategy.MOST_SKILLED, sticky_s=20,
                      escalation=(WidenSkills(40, alternatives=({"a": 2},)), OfferCallbackStep(80),
                                  AlertSupervisor(90), SendTo(300, "ticket"))),
    "q3": QueueConfig("q3", skills={"c": 1}, strategy=Strategy.LEAST_OCCUPIED, priority=20, max_wait=500),
    "q4": QueueConfig("q4", skills={}, strategy=Strategy.ROUND_ROBIN, teams=frozenset({"t1"})),
}

agent_st = st.fixed_dictionaries({
    "skills": st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=3),
    "team": st.sampled_from(["t1", "t2"]),
    "langs": st.sampled_from([frozenset(), frozenset({"en"}), frozenset({"fr"})]),
})

arrive_st = st.tuples(
    st.just("arrive"), st.sampled_from(sorted(QUEUES)), st.sampled_from(list(Channel)),
    st.sampled_from(list(Tier)), st.sampled_from([None, "en", "fr"]), st.sampled_from([None, 0, 1]),
    st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=1))
presence_st = st.tuples(st.just("presence"), st.integers(0, N_AGENTS - 1),
                        st.sampled_from([Presence.READY, Presence.READY, Presence.NOT_READY,
                                         Presence.OFFLINE]))
time_st = st.tuples(st.just("time"), st.sampled_from([0.0, 1.0, 5.0, 19.0, 25.0, 45.0, 130.0]))
accept_st = st.tuples(st.just("accept"), st.integers(0, 50))

op_st = st.one_of(
    arrive_st, presence_st, accept_st, time_st,
    st.tuples(st.just("decline"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("finish"), st.integers(0, 50), st.sampled_from([None, 0.0, 15.0])),
    st.tuples(st.just("hangup"), st.integers(0, 50)),
    st.tuples(st.just("callback"), st.integers(0, 50)),
    st.tuples(st.just("wrapend"), st.integers(0, N_AGENTS - 1)),
)


class Harness:
    def __init__(self, agents: list[dict[str, Any]], no_answer_not_ready: bool) -> None:
        cfg = EngineConfig(queues=QUEUES, not_ready_on_no_answer=no_answer_not_ready,
                           not_ready_on_decline=False, retry_same_agent_s=10)
        self.engine = Engine(cfg, InMemoryStore(cfg.mixing))
        self.rules = cfg.mixing
        self.now = 0.0
        self.profiles: dict[str, AgentProfile] = {}
        for i, a in enumerate(agents):
            p = AgentProfile(f"ag{i}", a["skills"], languages=a["langs"], team=a["team"])
            self.profiles[p.id] = p
            self.engine.add_agent(p, 0.0)
        self.load: dict[str, dict[Channel, int]] = {aid: {c: 0 for c in CHANNELS} for aid in self.profiles}
        self.holder: dict[str, tuple[str, Channel]] = {}  # contact -> (agent, channel)
        self.req: dict[str, Requirement] = {}
        self.contacts: dict[str, Contact] = {}
        self.ended: dict[str, ContactStatus] = {}
        self.offered: list[str] = []
        self.connected: list[str] = []
        self.n = 0

    # -- driving ----------------------------------------------------------------------------------

    def step(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        e = self.engine
        try:
            if kind == "arrive":
                _, q, ch, tier, lang, pref, skills = op
                self.n += 1
                c = Contact(f"c{self.n}", ch, q, self.now, tier=tier, language=lang, skills=skills,
                            preferred_agent=None if pref is None else f"ag{pref}")
                self.contacts[c.id] = c
                self.req[c.id] = Requirement.of(QUEUES[q].skills, skills)
                self.apply(e.handle(ContactArrived(c), self.now))
            elif kind == "presence":
                self.apply(e.handle(AgentPresence(f"ag{op[1]}", op[2], "r"), self.now))
            elif kind == "accept" and self.offered:
                cid = self.offered[op[1] % len(self.offered)]
                self.apply(e.handle(OfferAccepted(cid, self.holder[cid][0]), self.now))
                self.offered.remove(cid)
                self.connected.append(cid)
            elif kind == "decline" and self.offered:
                cid = self.offered[op[1] % len(self.offered)]
                self.apply(e.handle(OfferDeclined(cid, self.holder[cid][0], op[2]), self.now))
            elif kind == "finish" and self.connected:
                cid = self.connected[op[1] % len(self.connected)]
                self.apply(e.handle(ContactFinished(cid, self.holder[cid][0], op[2]), self.now))
            elif kind == "hangup":
                live = [c for c in self.contacts if c not in self.ended]
                if live:
                    self.apply(e.handle(ContactHungUp(live[op[1] % len(live)]), self.now))
            elif kind == "callback":
                live = [c for c in self.contacts if c not in self.ended]
                if live:
                    self.apply(e.handle(CallbackAccepted(live[op[1] % len(live)]), self.now))
            elif kind == "wrapend":
                from routing import WrapUpEnded

                self.apply(e.handle(WrapUpEnded(f"ag{op[1]}"), self.now))
            elif kind == "time":
                self.now += op[1]
        except BadInput:
            pass  # refused; state unchanged (checked below)
        self.drain()
        self.check_state()

    def drain(self) -> None:
        e = self.engine
        while (due := e.next_due()) is not None and due <= self.now:
            self.apply(e.tick(self.now))

    # -- checking decisions -----------------------------------------------------------------------

    def apply(self, decisions: list[Decision]) -> None:
        e = self.engine
        loads_at: list[dict[Channel, int]] = []
        for d in decisions:
            if isinstance(d, Offer):
                load = self.load[d.agent_id]
                loads_at.append(dict(load))
                assert can_take(load, d.channel, self.rules), (d, load)
                prof = self.profiles[d.agent_id]
                c = self.contacts[d.contact_id]
                assert self.req[d.contact_id].match(prof.skills) >= 0, (d, prof, self.req[d.contact_id])
                assert not (c.language and prof.languages and c.language not in prof.languages)
                load[d.channel] += 1
                self.holder[d.contact_id] = (d.agent_id, d.channel)
                self.offered.append(d.contact_id)
            else:
                loads_at.append({})
            if isinstance(d, (Requeue, Ended)) and d.contact_id in self.holder:
                aid, ch = self.holder.pop(d.contact_id)
                self.load[aid][ch] -= 1
                for lst in (self.offered, self.connected):
                    if d.contact_id in lst:
                        lst.remove(d.contact_id)
            if isinstance(d, Ended):
                assert d.contact_id not in self.ended, "ended twice"
                assert d.outcome in (ContactStatus.HANDLED, ContactStatus.ABANDONED,
                                     ContactStatus.TIMED_OUT, ContactStatus.CALLED_BACK)
                self.ended[d.contact_id] = d.outcome
            if isinstance(d, Escalate):
                q = QUEUES[d.queue]
                step = q.escalation[d.step]
                c = self.contacts[d.contact_id]
                if isinstance(step, WidenSkills):
                    self.req[d.contact_id] = self.req[d.contact_id].widened(step.lower_by, step.alternatives)
                elif isinstance(step, Overflow):
                    self.req[d.contact_id] = Requirement.of(QUEUES[step.queue].skills, c.skills)
            if isinstance(d, OfferCallback):
                pass
        # Priority: no contact still waiting, untouched after the offer, eligible for that agent
        # on a channel it could take then, has a higher key than the one offered.
        for j, d in enumerate(decisions):
            if not isinstance(d, Offer):
                continue
            key = {p.name: p.value for p in d.reasons}["priority_key"]
            touched_later = {x.contact_id for x in decisions[j + 1:] if isinstance(x, (Requeue, Escalate))}
            agent = e.store.agent(d.agent_id)
            assert agent is not None
            for cid, c in self.contacts.items():
                rec = e.store.contact(cid)
                if rec is None or rec.status is not ContactStatus.WAITING or cid in touched_later:
                    continue
                if can_take(loads_at[j], c.channel, self.rules) and e.eligible(agent, rec, self.now):
                    assert rec.key <= key + 1e-9, (cid, rec.key, d)

    def check_state(self) -> None:
        e = self.engine
        store = e.store
        waiting = 0
        for cid in self.contacts:
            rec = store.contact(cid)
            if cid in self.ended:
                assert rec is None, "ended contact still stored"
                continue
            assert rec is not None, f"contact {cid} vanished"
            assert rec.status in (ContactStatus.WAITING, ContactStatus.OFFERED, ContactStatus.CONNECTED)
            waiting += rec.status is ContactStatus.WAITING
            if rec.status is not ContactStatus.WAITING:
                assert self.holder[cid][0] == rec.agent_id
        assert store.waiting_count() == waiting
        for aid in self.profiles:
            agent = store.agent(aid)
            assert agent is not None
            assert {c: agent.load[c] for c in CHANNELS} == self.load[aid]
            if agent.presence is not Presence.READY:
                continue
            # quiescence: nothing eligible waits next to a ready agent that can take it
            for cid, c in self.contacts.items():
                rec = store.contact(cid)
                if rec is None or rec.status is not ContactStatus.WAITING:
                    continue
                if can_take(agent.load, c.channel, self.rules):
                    assert not e.eligible(agent, rec, self.now), (aid, cid)

    def finish_everything(self) -> None:
        """Hang up whatever is still live: every contact must end with an outcome."""
        for cid in list(self.contacts):
            if cid not in self.ended:
                self.apply(self.engine.handle(ContactHungUp(cid), self.now))
        assert set(self.ended) == set(self.contacts)
        assert self.engine.store.waiting_count() == 0
        assert all(all(v == 0 for v in ld.values()) for ld in self.load.values())
        assert not math.isinf(self.now)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow],
          deadline=None)
@given(agents=st.lists(agent_st, min_size=N_AGENTS, max_size=N_AGENTS),
       ops=st.lists(op_st, min_size=5, max_size=80), no_answer_not_ready=st.booleans())
def test_random_sequences_keep_invariants(agents: list[dict[str, Any]], ops: list[tuple[Any, ...]],
                                          no_answer_not_ready: bool) -> None:
    h = Harness(agents, no_answer_not_ready)
    for op in ops:
        h.step(op)
    h.finish_everything()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agents=st.lists(agent_st, min_size=N_AGENTS, max_size=N_AGENTS),
       ops=st.lists(st.one_of(arrive_st, presence_st, time_st, accept_st), min_size=20, max_size=120))
def test_busy_traffic_keeps_invariants(agents: list[dict[str, Any]], ops: list[tuple[Any, ...]]) -> None:
    h = Harness(agents, True)
    for op in ops:
        h.step(op)
        # agents finish what they accepted, so traffic keeps flowing
        if h.connected and op[0] == "time":
            cid = h.connected[0]
            h.apply(h.engine.handle(ContactFinished(cid, h.holder[cid][0], 0.0), h.now))
            h.drain()
            h.check_state()
    h.finish_everything()
