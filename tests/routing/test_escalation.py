from __future__ import annotations

from routing import (
    Alert,
    CallbackAccepted,
    ContactStatus,
    Ended,
    Escalate,
    OfferCallback,
    OfferCallbackStep,
    Overflow,
    QueueConfig,
    RaisePriority,
    SendTo,
    TimeOut,
    WidenSkills,
)
from routing.events import Timer, TimerKind
from tests.routing.conftest import agent, arrive, offers


def test_widen_skills_lowers_minimum(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 8}, escalation=(WidenSkills(30, lower_by=3),)))
    agent(e, "a1", {"support": 5})
    d = arrive(e, "c1", 0)
    assert offers(d) == []
    assert Timer(30, TimerKind.ESCALATE, "c1") in d
    assert e.next_due() == 30
    assert e.tick(29) == []
    out = e.tick(30)
    (esc,) = [x for x in out if isinstance(x, Escalate)]
    assert esc.action == "widen-skills" and esc.detail == "support>=5"
    (o,) = offers(out)
    assert o.agent_id == "a1"
    assert any(p.name == "widened" for p in o.reasons)


def test_widen_skills_alternatives(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"billing": 7},
                                escalation=(WidenSkills(10, alternatives=({"general": 2},)),)))
    agent(e, "gen", {"general": 4})
    arrive(e, "c1", 0)
    (o,) = offers(e.tick(10))
    assert o.agent_id == "gen"


def test_raise_priority_reorders(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1}, escalation=(RaisePriority(50, by=1000),)),
                    QueueConfig("other", skills={"support": 1}))
    arrive(e, "early", 0, queue="other")
    arrive(e, "late", 10)
    e.tick(60)  # late is raised by 1000 -> ahead of early
    (o,) = offers(agent(e, "a1", now=61))
    assert o.contact_id == "late"
    assert {p.name: p.value for p in o.reasons}["escalation_boost"] == 1000


def test_overflow_keeps_arrival_and_uses_new_queue(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("billing", skills={"billing": 5}, escalation=(Overflow(20, "general"),)),
                    QueueConfig("general", skills={"general": 1}, max_wait=100))
    agent(e, "g1", {"general": 3})
    arrive(e, "c1", 0, queue="billing")
    out = e.tick(20)
    assert [x.detail for x in out if isinstance(x, Escalate)] == ["general"]
    (o,) = offers(out)
    assert (o.agent_id, o.queue) == ("g1", "general")
    assert {p.name: p.value for p in o.reasons}["wait_s"] == 20


def test_overflow_restarts_the_new_queue_timers(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("billing", skills={"billing": 5}, escalation=(Overflow(20, "general"),)),
                    QueueConfig("general", skills={"general": 1}, max_wait=100))
    arrive(e, "c1", 0, queue="billing")
    e.tick(20)
    assert e.next_due() == 120
    out = e.tick(120)
    assert TimeOut("c1", "general", "voicemail") in out
    assert Ended("c1", ContactStatus.TIMED_OUT) in out


def test_offer_callback_then_accept(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1}, escalation=(OfferCallbackStep(60),)))
    arrive(e, "c1", 0)
    assert OfferCallback("c1", "support") in e.tick(60)
    out = e.handle(CallbackAccepted("c1"), 70)
    assert out == [Ended("c1", ContactStatus.CALLED_BACK)]
    assert e.store.contact("c1") is None and e.store.waiting_count() == 0


def test_alert_supervisor_keeps_waiting(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1},
                                escalation=(AlertSupervisor_(30), SendTo(90, "ticket"))))
    arrive(e, "c1", 0)
    assert Alert("c1", "support", "waiting too long") in e.tick(30)
    assert e.store.waiting_count() == 1
    out = e.tick(90)
    assert TimeOut("c1", "support", "ticket") in out and Ended("c1", ContactStatus.TIMED_OUT) in out


def AlertSupervisor_(after: float):  # type: ignore[no-untyped-def]  # noqa: N802
    from routing import AlertSupervisor

    return AlertSupervisor(after, "waiting too long")


def test_steps_due_together_all_fire(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 9},
                                escalation=(WidenSkills(10, lower_by=2), WidenSkills(10, lower_by=2),
                                            RaisePriority(10, 5))))
    arrive(e, "c1", 0)
    out = e.tick(100)
    assert [x.action for x in out if isinstance(x, Escalate)] == ["widen-skills", "widen-skills",
                                                                  "raise-priority"]
    rec = e.store.contact("c1")
    assert rec is not None and rec.requirement.encode() == "support>=5" and rec.boost == 5


def test_escalation_waits_while_ringing(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine(QueueConfig("support", skills={"support": 1}, max_wait=30), ring_timeout_s=20)
    agent(e, "a1")
    arrive(e, "c1", 25)
    # max-wait at 55 while ringing until 45: the ring times out first, the contact comes back
    out = e.tick(45)
    assert any(type(x).__name__ == "Requeue" for x in out)
    out = e.tick(55)
    assert TimeOut("c1", "support", "voicemail") in out
