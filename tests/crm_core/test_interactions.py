"""Interaction lifecycle, timeline, dispositions and CSAT."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.errors import (
    InvalidTransition,
    NoteTooLong,
    NotFound,
    UnknownValue,
    ValidationError,
)
from crm_core.models import Interaction, InteractionEvent, SurveyResult
from tests.crm_core.conftest import count_rows

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


async def test_voice_lifecycle_stamps_times_and_logs_events(store):
    c = await store.create_customer("Caller", phones=["+12025550180"])
    agent = await store.create_user("agent1", "password1", "agent", extension="1001")
    i = await store.open_interaction("voice", "inbound", c.id, external_id="1700000000.1",
                                     from_address="+12025550180", ivr_path=["main", "billing"],
                                     skills={"billing": 3}, at=at(0))
    assert (i.state, i.created_at, i.customer_id) == ("new", at(0), c.id)
    await store.set_state(i.id, "ivr", at=at(1))
    await store.set_state(i.id, "queued", at=at(20), queue="billing")
    await store.set_state(i.id, "offered", at=at(30), agent_id=agent.id)
    await store.set_state(i.id, "queued", at=at(45), data={"reason": "no answer"})  # re-queue
    await store.set_state(i.id, "offered", at=at(50), agent_id=agent.id)
    await store.set_state(i.id, "answered", at=at(55))
    await store.add_escalation_step(i.id, {"step": "widen_skills"}, at=at(56))
    await store.set_state(i.id, "ended", at=at(300))
    await store.set_disposition(i.id, "resolved", "Customer happy", agent_id=agent.id, at=at(310))
    i = await store.set_state(i.id, "wrapup_done", at=at(320))
    assert i.queued_at == at(20) and i.offered_at == at(30)  # re-queue keeps its place
    assert (i.answered_at, i.ended_at, i.wrapup_done_at) == (at(55), at(300), at(320))
    assert (i.agent_id, i.queue, i.disposition_code, i.notes) == (
        agent.id, "billing", "resolved", "Customer happy")
    assert i.ivr_path == ["main", "billing"] and i.skills == {"billing": 3}
    assert [s["step"] for s in i.escalation_steps] == ["widen_skills"]
    assert (await store.find_interaction("1700000000.1")).id == i.id

    events = await store.timeline(i.id)
    assert [e.kind for e in events] == ["opened"] + ["state"] * 6 + [
        "escalation", "state", "disposition", "state"]
    assert [e.data["to"] for e in events if e.kind == "state"] == [
        "ivr", "queued", "offered", "queued", "offered", "answered", "ended", "wrapup_done"]
    assert events[4].data == {"from": "offered", "to": "queued", "reason": "no answer"}
    assert all(e.at.tzinfo is not None for e in events)


async def test_invalid_transitions_write_nothing(store, database):
    i = await store.open_interaction("chat", "inbound")
    await store.set_state(i.id, "answered")
    before = await count_rows(database, InteractionEvent)
    for bad in ("queued", "wrapup_done", "offered"):
        with pytest.raises(InvalidTransition):
            await store.set_state(i.id, bad)
    with pytest.raises(UnknownValue):
        await store.set_state(i.id, "flying")
    assert (await store.get_interaction(i.id)).state == "answered"
    assert await count_rows(database, InteractionEvent) == before
    again = await store.set_state(i.id, "answered")  # same state: no-op
    assert again.state == "answered" and await count_rows(database, InteractionEvent) == before
    await store.set_state(i.id, "ended")
    await store.set_state(i.id, "wrapup_done")
    with pytest.raises(InvalidTransition):
        await store.set_state(i.id, "ended")
    with pytest.raises(NotFound):
        await store.set_state(10**9, "ended")


async def test_abandoned_call_stamps_end(store):
    i = await store.open_interaction("voice", "inbound", state="queued", at=at(0))
    assert i.queued_at == at(0)
    i = await store.set_state(i.id, "abandoned", at=at(90))
    assert i.ended_at == at(90) and i.answered_at is None


@pytest.mark.parametrize("kwargs", [
    {"channel": "fax", "direction": "inbound"},
    {"channel": "voice", "direction": "sideways"},
    {"channel": "voice", "direction": "inbound", "state": "dancing"},
])
async def test_open_rejects_unknown_values(store, database, kwargs):
    with pytest.raises(UnknownValue):
        await store.open_interaction(**kwargs)
    assert await count_rows(database, Interaction) == 0


async def test_open_for_unknown_customer_writes_nothing(store, database):
    with pytest.raises(NotFound):
        await store.open_interaction("voice", "inbound", 10**9)
    with pytest.raises(ValidationError):
        await store.open_interaction("voice", "inbound", at=datetime(2026, 1, 1))  # naive
    assert await count_rows(database, Interaction) == 0
    assert await count_rows(database, InteractionEvent) == 0


async def test_events_are_append_only_and_failures_are_events(store, database):
    i = await store.open_interaction("voice", "inbound")
    e1 = await store.append_event(i.id, "agi.answer", data={"result": 0}, at=at(1))
    e2 = await store.append_event(i.id, "ami.originate", ok=False,
                                  data={"error": "Channel unavailable"}, at=at(2))
    events = await store.timeline(i.id)
    assert [(e.kind, e.ok) for e in events] == [("opened", True), ("agi.answer", True),
                                                ("ami.originate", False)]
    assert events[2].data == {"error": "Channel unavailable"} and e1.id < e2.id
    with pytest.raises(NotFound):
        await store.append_event(10**9, "x")
    with pytest.raises(NotFound):
        await store.timeline(10**9)
    with pytest.raises(ValidationError):
        await store.append_event(i.id, "")
    assert await count_rows(database, InteractionEvent) == 3


async def test_disposition_validation(store, database):
    i = await store.open_interaction("email", "inbound")
    with pytest.raises(UnknownValue) as e:
        await store.set_disposition(i.id, "made_up")
    assert "resolved" in e.value.allowed
    with pytest.raises(NoteTooLong):
        await store.set_disposition(i.id, "resolved", "x" * 10_001)
    await store.upsert_disposition_code("resolved", "Resolved", active=False)
    with pytest.raises(UnknownValue):
        await store.set_disposition(i.id, "resolved")
    got = await store.get_interaction(i.id)
    assert got.disposition_code is None and got.notes is None
    assert [e.kind for e in await store.timeline(i.id)] == ["opened"]


async def test_csat_and_surveys(store, database):
    c = await store.create_customer("Happy")
    i = await store.open_interaction("chat", "inbound", c.id)
    s = await store.set_csat(i.id, 4, comment="quick")
    assert (s.customer_id, s.channel, s.score, s.comment) == (c.id, "chat", 4, "quick")
    assert (await store.get_interaction(i.id)).csat_score == 4
    await store.record_survey(2, customer_id=c.id, channel="voice")
    await store.record_survey(5)  # anonymous survey
    for bad in (0, 6, "5", 4.5, True):
        with pytest.raises(ValidationError):
            await store.record_survey(bad, customer_id=c.id)
    with pytest.raises(UnknownValue):
        await store.record_survey(3, customer_id=c.id, channel="fax")
    other = await store.create_customer("Other")
    with pytest.raises(ValidationError):
        await store.record_survey(3, interaction_id=i.id, customer_id=other.id)
    assert await count_rows(database, SurveyResult) == 3
    c = await store.get_customer(c.id)
    assert (c.csat_sum, c.csat_count) == (6, 2)


async def test_link_customer_later(store):
    i = await store.open_interaction("voice", "inbound", from_address="anonymous")
    c = await store.create_customer("Found Later")
    i = await store.link_customer(i.id, c.id)
    assert i.customer_id == c.id
    c = await store.get_customer(c.id)
    assert c.contact_count == 1 and c.loyalty == "new"


async def test_writes_carry_their_timeline_events_in_one_transaction(store, database):
    """open_interaction, link_customer and update_interaction write `events` right after their
    own (one transaction each); a bad kind is refused before anything is written."""
    c = await store.create_customer("Folded")
    i = await store.open_interaction("voice", "inbound", events=[("arrive", {"caller": "+1202"})])
    await store.link_customer(i.id, c.id, events=[(" identify ", {"known": True})])
    await store.update_interaction(i.id, ivr_path=["menu"], events=[("ivr", {"result": "queue"})])
    await store.set_state(i.id, "ended")
    await store.record_survey(5, interaction_id=i.id, events=[("survey", {"score": 5})])
    kinds = [(e.kind, e.ok, e.data) for e in await store.timeline(i.id) if e.kind != "state"]
    assert kinds == [("opened", True, {"channel": "voice", "direction": "inbound", "state": "new"}),
                     ("arrive", True, {"caller": "+1202"}),
                     ("customer_linked", True, {"customer_id": c.id, "previous": None}),
                     ("identify", True, {"known": True}),
                     ("ivr", True, {"result": "queue"}),
                     ("csat", True, {"score": 5}), ("survey", True, {"score": 5})]
    assert (await store.get_interaction(i.id)).ivr_path == ["menu"]
    before = await count_rows(database, InteractionEvent)
    for bad in ("", "x" * 65):
        with pytest.raises(ValidationError):
            await store.open_interaction("voice", "inbound", events=[(bad, {})])
        with pytest.raises(ValidationError):
            await store.update_interaction(i.id, queue="general", events=[(bad, {})])
    assert await count_rows(database, InteractionEvent) == before
    assert (await store.get_interaction(i.id)).queue is None
