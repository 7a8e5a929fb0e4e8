"""A restart does not zero the board: scripted calls on the simulated PBX (one answered, one
abandoned), then a new center on the same database shows the same figures, rebuilt from the
stored timelines. Then local midnight (an injected wall clock) starts the day's counters again."""
from __future__ import annotations

import pytest

from callcenter.keys import CENTER
from callcenter.services import wallboard_day as day
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import VIP_PHONE, running_center
from tests.callcenter.wallboard.harness import Board, agent, queue, seed_board
from tests.callcenter.wallboard.test_day import TOLERANCE_S, _answer, _wrapup

pytestmark = pytest.mark.timeout(120)
KEYS = ("answered", "answered_in_sl", "abandoned", "handled", "transferred")


async def test_a_new_center_on_the_same_database_shows_the_same_figures(database):
    store = _store(database)
    await seed_board(store)
    async with running_center(database) as rc:
        ada = await Board.open(rc.base, await cookie_for(rc.base, "ada"))
        await ada.next()
        ws_a, ann = await open_console(rc.base, await cookie_for(rc.base, "ann"))
        await ann.send("set_state", state="ready")
        await ann.next("agent_state", state="ready")
        call, first = await _answer(rc, ann, VIP_PHONE, ("1",))
        call.hangup()
        await _wrapup(ann, first)
        await ann.send("set_state", state="not_ready", reason="break")
        await ann.next("agent_state", state="not_ready")
        call = rc.sim.call(VIP_PHONE, digits=["1"])
        await ada.next(lambda f: queue(f, "vip")["waiting"] == 1 and queue(f, "vip")["handled"] == 1)
        call.hangup()
        before = await ada.next(lambda f: queue(f, "vip")["abandoned"] == 1)
        await ws_a.close()
        await ada.close()
    was = queue(before, "vip")
    assert [was[k] for k in KEYS] == [1, 1, 1, 1, 0]

    async with running_center(database) as rc:
        board = rc.app[CENTER].wallboard
        await board.loaded.wait()
        ada = await Board.open(rc.base, await cookie_for(rc.base, "ada"))
        after = await ada.next(lambda f: (queue(f, "vip") or {}).get("handled") == 1)
        now = queue(after, "vip")
        assert [now[k] for k in KEYS] == [was[k] for k in KEYS]
        assert now["asa_s"] == pytest.approx(was["asa_s"], abs=TOLERANCE_S)
        assert now["aht_s"] == pytest.approx(was["aht_s"], abs=TOLERANCE_S)
        assert (now["sl_pct"], now["abandon_pct"]) == (was["sl_pct"], was["abandon_pct"])
        assert [r["interaction_id"] for r in now["abandoned_contacts"]] == \
            [r["interaction_id"] for r in was["abandoned_contacts"]]
        assert now["waiting"] == 0
        assert agent(after, "Ann")["handled"] == 1

        # local midnight (the injected wall clock): the day's counters start again
        tomorrow = day.next_midnight(board.wall(), board.tz) + 1.0
        board.wall = lambda: tomorrow
        assert board.check_day() and not board.check_day()
        reset = await ada.next(lambda f: queue(f, "vip")["handled"] == 0)
        assert [queue(reset, "vip")[k] for k in KEYS] == [0, 0, 0, 0, 0]
        assert queue(reset, "vip")["abandoned_contacts"] == [] and agent(reset, "Ann")["handled"] == 0
        await ada.close()
