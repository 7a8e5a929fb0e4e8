"""Supervisor actions on a waiting contact (issue 15): move to a queue or an agent, raise priority."""
from __future__ import annotations

import pytest

from routing import (
    AgentPresence,
    AgentProfile,
    BadInput,
    Channel,
    Contact,
    ContactArrived,
    ContactMoved,
    Engine,
    EngineConfig,
    Escalate,
    Offer,
    Presence,
    PriorityRaised,
    QueueConfig,
)


def _engine() -> Engine:
    e = Engine(EngineConfig(queues={"a": QueueConfig("a", skills={"x": 1}),
                                    "b": QueueConfig("b", skills={"y": 1})}))
    e.add_agent(AgentProfile("1", {"x": 5}), 0)
    e.add_agent(AgentProfile("2", {"x": 5, "y": 5}), 0)
    e.add_agent(AgentProfile("3", {"z": 5}), 0)
    return e


def test_raise_priority_puts_the_contact_first() -> None:
    e = _engine()
    e.handle(ContactArrived(Contact("c1", Channel.VOICE, "b", 0)), 0)
    e.handle(ContactArrived(Contact("c2", Channel.VOICE, "b", 1)), 1)
    assert [c for c, _ in e.waiting()] == ["c1", "c2"]
    out = e.handle(PriorityRaised("c2", 5), 2)
    assert out == [Escalate("c2", "b", -1, "raise-priority", "+5")]
    assert [c for c, _ in e.waiting()] == ["c2", "c1"]
    offers = [d for d in e.handle(AgentPresence("2", Presence.READY), 3) if isinstance(d, Offer)]
    assert [o.contact_id for o in offers] == ["c2"]
    with pytest.raises(BadInput):
        e.handle(PriorityRaised("c1", 0), 4)
    with pytest.raises(BadInput):  # offered, not waiting
        e.handle(PriorityRaised("c2", 1), 4)


def test_move_to_another_queue_starts_over_there_and_is_offered() -> None:
    e = _engine()
    e.handle(AgentPresence("1", Presence.READY), 0)
    assert e.handle(ContactArrived(Contact("c1", Channel.VOICE, "b", 0)), 0) == []  # nobody with y
    out = e.handle(ContactMoved("c1", queue="a"), 1)
    assert out[0] == Escalate("c1", "b", -1, "move-queue", "a")
    offer = next(d for d in out if isinstance(d, Offer))
    assert (offer.agent_id, offer.queue) == ("1", "a")
    with pytest.raises(BadInput):
        e.handle(ContactMoved("c1", queue="a"), 2)  # no longer waiting


def test_move_to_an_agent_waits_for_that_agent_only() -> None:
    e = _engine()
    e.handle(ContactArrived(Contact("c1", Channel.VOICE, "a", 0)), 0)
    with pytest.raises(BadInput):
        e.handle(ContactMoved("c1", agent_id="3"), 1)  # lacks the skill
    with pytest.raises(BadInput):
        e.handle(ContactMoved("c1", queue="a", agent_id="2"), 1)
    out = e.handle(ContactMoved("c1", agent_id="2", sticky_s=60), 1)
    assert out[0] == Escalate("c1", "a", -1, "move-agent", "2")
    # agent 1 could take it, but it waits for agent 2
    assert not [d for d in e.handle(AgentPresence("1", Presence.READY), 2) if isinstance(d, Offer)]
    offers = [d for d in e.handle(AgentPresence("2", Presence.READY), 3) if isinstance(d, Offer)]
    assert [(o.contact_id, o.agent_id) for o in offers] == [("c1", "2")]


def test_moved_to_an_agent_falls_back_to_the_queue_after_sticky_s() -> None:
    e = _engine()
    e.handle(AgentPresence("1", Presence.READY), 0)
    e.handle(AgentPresence("1", Presence.NOT_READY, "break"), 0)
    e.handle(ContactArrived(Contact("c1", Channel.VOICE, "a", 0)), 0)
    e.handle(ContactMoved("c1", agent_id="2", sticky_s=10), 1)
    e.handle(AgentPresence("1", Presence.READY), 2)
    offers = [d for d in e.tick(11) if isinstance(d, Offer)]
    assert [(o.contact_id, o.agent_id) for o in offers] == [("c1", "1")]
