"""A scripted day on the simulated PBX (real AMI and FastAGI over TCP): calls answered, one
abandoned, one transferred to another queue. The wallboard's incremental statistics must agree with
what the database says afterwards (each interaction's timeline: queue, answer, abandon, transfer,
hangup). Then a supervisor calls the abandoned caller back in one click."""
from __future__ import annotations

from collections import defaultdict

import pytest
from sqlalchemy import select

from callcenter.keys import CENTER
from crm_core.models import Interaction, InteractionEvent
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, running_center
from tests.callcenter.wallboard.harness import Board, agent, queue, seed_board

pytestmark = pytest.mark.timeout(120)
TOLERANCE_S = 0.3  # the board stamps times with the routing clock, the store with its own


async def _answer(rc, console, phone, digits):
    call = rc.sim.call(phone, digits=list(digits))
    try:
        offer = await console.next("offer")
    except TimeoutError:
        raise AssertionError([m["type"] + ":" + str(m.get("state")) for m in console.seen[-12:]]) from None
    await console.send("ack_offer", offer_id=offer["offer_id"])
    await console.next("contact_state", state="ringing")
    await console.send("answer", interaction_id=offer["interaction_id"])
    await console.next("contact_state", state="talking")
    return call, offer["interaction_id"]


async def _wrapup(console, iid):
    await console.next("wrapup", interaction_id=iid)
    await console.send("submit_wrapup", interaction_id=iid, disposition="resolved", notes="done")
    await console.next("wrapup_saved", interaction_id=iid)


def _from_database(interactions, events, sl_target_s):
    """Per queue, from the stored timelines: each `queue` event starts a wait segment."""
    out = defaultdict(lambda: {"answered": 0, "answered_in_sl": 0, "abandoned": 0, "handled": 0,
                               "transferred": 0, "waits": [], "talks": []})
    for i in interactions:
        seg = None
        for e in events[i.id]:
            if e.kind == "queue":
                seg = {"queue": e.data["queue"], "at": e.at, "answered": None}
            elif seg is None:
                continue
            elif e.kind == "answer":
                seg["answered"] = e.at
                row = out[seg["queue"]]
                wait = (e.at - seg["at"]).total_seconds()
                row["answered"] += 1
                row["answered_in_sl"] += wait <= sl_target_s[seg["queue"]]
                row["waits"].append(wait)
            elif e.kind == "abandon":
                out[seg["queue"]]["abandoned"] += 1
                seg = None
            elif e.kind in ("transfer", "hangup") and seg["answered"] is not None:
                row = out[seg["queue"]]
                row["handled"] += 1
                row["transferred"] += e.kind == "transfer"
                row["talks"].append((e.at - seg["answered"]).total_seconds())
                seg = None
    return out


async def test_the_board_agrees_with_the_database_after_a_scripted_day(database):
    store = _store(database)
    people = await seed_board(store)
    async with running_center(database) as rc:
        center = rc.app[CENTER]
        ada = await Board.open(rc.base, await cookie_for(rc.base, "ada"))
        await ada.next()
        ws_a, ann = await open_console(rc.base, await cookie_for(rc.base, "ann"))
        ws_b, bob = await open_console(rc.base, await cookie_for(rc.base, "bob"))
        await ann.send("set_state", state="ready")
        await ann.next("agent_state", state="ready")

        # 1. a VIP call, answered by Ann, the caller hangs up
        call, first = await _answer(rc, ann, VIP_PHONE, ("1",))
        busy = await ada.next(lambda f: agent(f, "Ann")["state"] == "busy")
        assert agent(busy, "Ann")["contacts"][0]["interaction_id"] == first
        call.hangup()
        await _wrapup(ann, first)

        # 2. Ann on a break: a caller waits, then hangs up (abandoned)
        await ann.send("set_state", state="not_ready", reason="break")
        await ann.next("agent_state", state="not_ready")
        call = rc.sim.call(VIP_PHONE, digits=["1"])
        # (handled == 1: not a frame from the first call's wait, still unread)
        waiting = await ada.next(lambda f: queue(f, "vip")["waiting"] == 1
                                 and queue(f, "vip")["handled"] == 1)
        lost = queue(waiting, "vip")["contacts"][0]["interaction_id"]
        assert queue(waiting, "vip")["contacts"][0]["customer"] == "Victoria Important"
        call.hangup()
        gone = await ada.next(lambda f: queue(f, "vip")["abandoned"] == 1)
        assert queue(gone, "vip")["abandoned_contacts"][0]["interaction_id"] == lost

        # 3. Ann answers another, blind-transfers it to support, Bob answers it
        await ann.send("set_state", state="ready")
        await ann.next("agent_state", state="ready")
        call, moved = await _answer(rc, ann, VIP_PHONE, ("1",))
        await bob.send("set_state", state="ready")  # Bob serves vip too: only now
        await bob.next("agent_state", state="ready")
        await ann.send("transfer", interaction_id=moved, target_type="queue", target="support")
        await _wrapup(ann, moved)
        offer = await bob.next("offer")
        await bob.send("ack_offer", offer_id=offer["offer_id"])
        await bob.next("contact_state", state="ringing")
        await bob.send("answer", interaction_id=moved)
        await bob.next("contact_state", state="talking")
        call.hangup()
        await _wrapup(bob, moved)
        done = await ada.next(lambda f: queue(f, "support")["handled"] == 1
                              and agent(f, "Bob")["state"] != "busy")

        board = {q["queue"]: q for q in done["queues"] if q["channel"] == "voice"}
        async with database.session() as s:
            interactions = (await s.execute(select(Interaction).where(Interaction.id >= first))
                            ).scalars().all()
            rows = (await s.execute(select(InteractionEvent).where(InteractionEvent.interaction_id >= first)
                                    .order_by(InteractionEvent.id))).scalars().all()
        events = defaultdict(list)
        for e in rows:
            events[e.interaction_id].append(e)
        targets = {n: q.service_level.seconds for n, q in center.runner.engine.config.queues.items()}
        db = _from_database(interactions, events, targets)
        assert {n for n, r in db.items() if r["answered"] or r["abandoned"]} == {"vip", "support"}
        for name, want in db.items():
            got = board[name]
            for key in ("answered", "answered_in_sl", "abandoned", "handled", "transferred"):
                assert got[key] == want[key], (name, key, got[key], want[key])
            assert got["asa_s"] == pytest.approx(sum(want["waits"]) / len(want["waits"]), abs=TOLERANCE_S)
            assert got["aht_s"] == pytest.approx(sum(want["talks"]) / len(want["talks"]), abs=TOLERANCE_S)
        assert (board["vip"]["answered"], board["vip"]["abandoned"], board["vip"]["transferred"]) == (2, 1, 1)
        assert [i.state for i in interactions if i.id == lost] == ["abandoned"]
        assert agent(done, "Ann")["handled"] == 2 and agent(done, "Bob")["handled"] == 1

        # the abandoned caller, called back in one click (a callback contact, services/callbacks.py)
        await ann.send("set_state", state="not_ready", reason="break")
        await ann.next("agent_state", state="not_ready")
        await ada.send("wallboard_callback", interaction_id=lost, request_id="cb1")
        scheduled = await ada.next(lambda m: m.get("request_id") == "cb1", type_="callback_scheduled")
        assert scheduled["customer_id"] == people["vip"].id and scheduled["number"] == VIP_PHONE
        shown = await ada.next(lambda f: queue(f, "vip")["abandoned_contacts"][0]["callback_id"] is not None)
        assert queue(shown, "vip")["abandoned_contacts"][0]["callback_id"] == scheduled["callback_id"]
        timeline = await store.timeline(scheduled["interaction_id"])
        assert [e.data.get("from_interaction") for e in timeline if e.kind == "callback_scheduled"] == [lost]
        await ada.send("wallboard_callback", interaction_id=lost, request_id="cb2")
        again = await ada.next(lambda m: m.get("request_id") == "cb2", type_="error")
        assert again["code"] == "conflict"
        assert REGULAR_PHONE  # (the regular customer stays out of this day)
        for ws in (ws_a, ws_b):
            await ws.close()
        await ada.close()
