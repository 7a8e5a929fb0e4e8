"""The wallboard's day, pure: today's stored timelines replayed into the statistics (figures worked
out by hand), the reset at local midnight, the local day in the center's zone, and the events'
wire form between processes (their times moved from one process's time base to another's)."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from callcenter.services import wallboard_day as day
from callcenter.services import wallboard_stats as ws

T0 = 1_000_000.0
NY = day.zone("America/New_York")


def _day() -> list[day.Stored]:
    """1: answered by a1 after 5 s, talk 60 s. 2: abandoned after 30 s. 3: answered by a1 after
    25 s, talk 10 s, transferred to support, answered there by a2 after 4 s, talk 20 s.
    4: a chat with no `queue` event (columns only), answered by a2 after 2 s, ended after 40 s.
    5: waiting now (no end). 6: final state but its hangup missing: ends abandoned."""
    return [
        day.Stored(1, "voice", "wrapup_done", "billing", 7, timeline=[
            ("queue", T0, {"queue": "billing"}), ("offer", T0 + 4, {"agent": "a1"}),
            ("answer", T0 + 5, {}), ("hangup", T0 + 65, {})]),
        day.Stored(2, "voice", "abandoned", "billing", 8, timeline=[
            ("queue", T0 + 10, {"queue": "billing"}), ("abandon", T0 + 40, {})]),
        day.Stored(3, "voice", "wrapup_done", "support", None, timeline=[
            ("queue", T0 + 20, {"queue": "billing"}), ("offer", T0 + 44, {"agent": "a1"}),
            ("answer", T0 + 45, {}), ("transfer", T0 + 55, {"target": "support"}),
            ("queue", T0 + 55, {"queue": "support", "transfer": True}),
            ("offer", T0 + 58, {"agent": "a2"}), ("answer", T0 + 59, {}), ("hangup", T0 + 79, {})]),
        day.Stored(4, "chat", "wrapup_done", "general", None, queued_at=T0 + 100,
                   answered_at=T0 + 102, ended_at=T0 + 142, agent="a2"),
        day.Stored(5, "voice", "queued", "billing", 9, timeline=[("queue", T0 + 200, {"queue": "billing"})]),
        day.Stored(6, "voice", "failed", "billing", None, ended_at=T0 + 210, timeline=[
            ("queue", T0 + 205, {"queue": "billing"})]),
    ]


def _row(stats: ws.WallboardStats, queue: str, channel: str = "voice") -> dict:
    return stats.queue_row(stats.queues[(queue, channel)])


def test_todays_timelines_replayed_give_the_figures_worked_out_by_hand():
    stats = ws.WallboardStats({"billing": ws.Target(0.8, 20), "support": ws.Target(0.8, 20),
                               "general": ws.Target(0.8, 20)})
    events = day.replay(_day())
    assert [e.at for e in events] == sorted(e.at for e in events)
    stats.apply_all(events)
    billing = _row(stats, "billing")
    # answered 1 (5 s) and 3 (25 s); abandoned 2 and 6; handled 1 and 3 (the transfer ends a1's part)
    assert (billing["answered"], billing["answered_in_sl"], billing["abandoned"]) == (2, 1, 2)
    assert (billing["handled"], billing["transferred"]) == (2, 1)
    assert billing["asa_s"] == 15.0 and billing["aht_s"] == 35.0  # (5+25)/2, (60+10)/2
    assert billing["sl_pct"] == 25.0 and billing["abandon_pct"] == 50.0
    assert billing["waiting"] == 1 and billing["contacts"][0]["interaction_id"] == 5
    assert [r["interaction_id"] for r in billing["abandoned_contacts"]] == [6, 2]
    assert billing["abandoned_contacts"][1]["customer_id"] == 8
    assert billing["abandoned_contacts"][1]["waited_s"] == 30.0
    support = _row(stats, "support")
    assert (support["answered"], support["handled"], support["asa_s"], support["aht_s"]) == (1, 1, 4.0, 20.0)
    chat = _row(stats, "general", "chat")
    assert (chat["answered"], chat["handled"], chat["asa_s"], chat["aht_s"]) == (1, 1, 2.0, 40.0)
    a1, a2 = stats.agent_row(stats.agents["a1"]), stats.agent_row(stats.agents["a2"])
    assert (a1["handled"], a1["aht_s"]) == (2, 35.0)
    assert (a2["handled"], a2["aht_s"]) == (2, 30.0)  # (20+40)/2
    assert a1["contacts"] == [] and a2["contacts"] == []


def test_a_contact_moved_before_its_answer_waits_again_in_the_new_queue():
    events = day.replay([day.Stored(1, "voice", "queued", "overflow", None, timeline=[
        ("queue", T0, {"queue": "billing"}), ("queue", T0 + 30, {"queue": "overflow"})])])
    stats = ws.WallboardStats()
    stats.apply_all(events)
    assert _row(stats, "billing")["waiting"] == 0 and _row(stats, "billing")["transferred"] == 0
    assert _row(stats, "overflow")["waiting"] == 1


def test_local_midnight_resets_the_counters_and_keeps_what_is_live():
    stats = ws.WallboardStats()
    stats.add_agent(ws.AgentInfo("a1", "Ann", ("red",), frozenset({("billing", "voice")})), T0)
    stats.apply_all(day.replay(_day()))
    stats.apply(ws.AgentState("a1", "ready", T0 + 300))
    stats.apply_all([ws.Queued("7", "billing", "voice", T0 + 310), ws.Answered("7", "a1", T0 + 320)])
    before = stats.version
    stats.reset_day(T0 + 400)
    assert stats.version > before
    billing = _row(stats, "billing")
    for key in ("answered", "answered_in_sl", "abandoned", "handled", "transferred"):
        assert billing[key] == 0, key
    assert billing["asa_s"] is None and billing["abandoned_contacts"] == []
    assert billing["waiting"] == 1  # interaction 5 still waits
    a1 = stats.agent_row(stats.agents["a1"])
    assert (a1["state"], a1["handled"], a1["busy_s"]) == ("busy", 0, 0.0)
    assert a1["since"] == T0 + 320  # the time in state is not reset
    assert stats.occupancy("a1", T0 + 410) == 100.0  # 10 s busy since midnight
    stats.apply(ws.Ended("7", "handled", T0 + 430))  # answered before midnight, ended after
    billing = _row(stats, "billing")
    assert (billing["handled"], billing["aht_s"]) == (1, 110.0)
    assert stats.agent_row(stats.agents["a1"])["busy_s"] == 30.0  # from midnight on only


def test_the_local_day_follows_the_centers_zone():
    # 03:30 UTC on 26 Nov is still 25 Nov in New York (UTC-5)
    t = datetime(2026, 11, 26, 3, 30, tzinfo=UTC).timestamp()
    assert day.local_day(t, NY) == date(2026, 11, 25)
    assert day.local_day(t, day.zone("UTC")) == date(2026, 11, 26)
    assert day.day_start(date(2026, 11, 25), NY) == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    assert day.next_midnight(t, NY) == datetime(2026, 11, 26, 5, 0, tzinfo=UTC).timestamp()
    # the spring DST change: the local day is 23 hours long
    assert day.next_midnight(datetime(2026, 3, 8, 6, tzinfo=UTC).timestamp(), NY) \
        - day.day_start(date(2026, 3, 8), NY).timestamp() == 23 * 3600


def test_events_travel_between_time_bases():
    events = [ws.Queued("1", "billing", "voice", 10.0, tier="vip", customer_id="7", interaction_id=1),
              ws.Offered("1", "a1", 11.0), ws.Answered("1", "a1", 12.0),
              ws.CustomerKnown("1", "Victoria", "vip", "7"), ws.AgentState("a1", "not_ready", 13.0, "break"),
              ws.Moved("2", "overflow", 14.0), ws.Requeued("1", "a1", 15.0), ws.Ended("1", "handled", 16.0)]
    wire = day.to_wire(events, offset=1000.0)  # process A: epoch = event time + 1000
    assert wire[0]["at"] == 1010.0 and wire[0]["t"] == "Queued"
    back = day.from_wire(wire, offset=400.0)  # process B: epoch = event time + 400
    assert back[0] == ws.Queued("1", "billing", "voice", 610.0, tier="vip", customer_id="7", interaction_id=1)
    assert back[3] == events[3]
    assert [type(e) for e in back] == [type(e) for e in events]
    assert [e.at for e in back if hasattr(e, "at")] == pytest.approx([610, 611, 612, 613, 614, 615, 616])
    assert day.from_wire([{"t": "Nope"}, {"t": "Offered", "x": 1}], 0.0) == []
