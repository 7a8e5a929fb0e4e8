"""Scripted outcomes of outbound calls (campaign dialing): who answers, who is busy, machines.

    sim.outbound(OutboundScript(answer=0.2, machine=0.1, busy=0.1, ring_s=10, talk_s=180, seed=1))

Every number dialled out through the trunk (Originate to ``PJSIP/<number>@trunk``, or a Dial
from ``[cc-campaign]``) that has no Behaviour of its own gets one drawn from the script: a person
who answers after a ring and talks for an exponential time (then hangs up), an answering machine
(answers; the dialplan's ``AMD()`` says MACHINE), busy, or no answer (rings until the Originate's
timeout). Draws come from the script's own seeded generator, in dial order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from callcenter.asterisk.simulator.pbx import Behaviour


@dataclass
class OutboundScript:
    answer: float = 0.3  # a person answers
    machine: float = 0.1  # an answering machine answers
    busy: float = 0.1  # the line is busy; the rest ring unanswered
    ring_s: float = 10.0  # mean time before a person or machine answers (uniform 0.3x..1.7x)
    talk_s: float = 180.0  # mean talk time of a person (exponential)
    machine_talk_s: float = 30.0  # a machine's greeting, then it hangs up
    seed: int = 1
    trunk_suffix: str = "@trunk"
    counts: dict[str, int] = field(
        default_factory=lambda: {"answer": 0, "machine": 0, "busy": 0, "no_answer": 0}
    )

    def __post_init__(self) -> None:
        if min(self.answer, self.machine, self.busy) < 0 or self.answer + self.machine + self.busy > 1:
            raise ValueError("answer + machine + busy must be between 0 and 1")
        self._rng = random.Random(self.seed)

    def draw(self) -> Behaviour:
        r = self._rng.random()
        ring = self.ring_s * self._rng.uniform(0.3, 1.7)
        if r < self.answer:
            self.counts["answer"] += 1
            return Behaviour(answer_after=ring, talk_time=self._rng.expovariate(1.0 / self.talk_s))
        if r < self.answer + self.machine:
            self.counts["machine"] += 1
            return Behaviour(answer_after=ring, talk_time=self.machine_talk_s, machine=True)
        if r < self.answer + self.machine + self.busy:
            self.counts["busy"] += 1
            return Behaviour(busy=True)
        self.counts["no_answer"] += 1
        return Behaviour(answer_after=None)
