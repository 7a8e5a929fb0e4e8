"""The wallboard websocket against the running app: a full snapshot on every (re)connect, the
supervisor's teams only, updates pushed on change and coalesced (at most 10 a second), the same
bytes for every client of a scope. Frames are checked against their JSON Schema."""
from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from callcenter.keys import CENTER
from routing import AgentPresence, Presence
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import running_center
from tests.callcenter.wallboard.harness import Board, agent, queue, seed_board

pytestmark = pytest.mark.timeout(90)


async def test_snapshot_on_connect_and_reconnect_scoped_to_teams(database):
    store = _store(database)
    await seed_board(store)
    async with running_center(database) as rc:
        sue = await Board.open(rc.base, await cookie_for(rc.base, "sue"))
        sam = await Board.open(rc.base, await cookie_for(rc.base, "sam"))
        ada = await Board.open(rc.base, await cookie_for(rc.base, "ada"))
        first = await sue.next()
        assert first["scope"] == ["red"] and [a["name"] for a in first["agents"]] == ["Ann"]
        assert agent(first, "Ann")["state"] == "offline"
        assert {q["queue"] for q in first["queues"]} == {"general", "billing", "vip"}  # what Ann serves
        blue = await sam.next()
        assert [a["name"] for a in blue["agents"]] == ["Bob"] and queue(blue, "billing") is None
        assert {q["queue"] for q in blue["queues"]} == {"general", "support", "vip"}
        everything = await ada.next()
        assert everything["scope"] == "all" and {a["name"] for a in everything["agents"]} == {"Ann", "Bob"}

        # agents may not open the wallboard
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await Board.open(rc.base, await cookie_for(rc.base, "ann"))
        assert refused.value.response.status_code == 403

        # Ann goes ready: red's board is told; blue's is not (its first update is Bob's change)
        ws_ann, ann = await open_console(rc.base, await cookie_for(rc.base, "ann"))
        await ann.send("set_state", state="ready")
        await ann.next("agent_state", state="ready")
        red = await sue.next(lambda f: agent(f, "Ann")["state"] == "ready")
        assert red["seq"] > first["seq"] and red["at"] >= first["at"]
        assert queue(red, "billing")["agents"]["ready"] == 1
        ws_bob, bob = await open_console(rc.base, await cookie_for(rc.base, "bob"))
        await bob.send("set_state", state="not_ready", reason="break")
        await bob.next("agent_state", state="not_ready")
        nxt = await sam.next()
        assert agent(nxt, "Bob")["state"] == "not_ready" and agent(nxt, "Bob")["reason"] == "break"
        assert agent(nxt, "Ann") is None

        # a reconnect starts from a full snapshot of now
        await sue.close()
        sue = await Board.open(rc.base, await cookie_for(rc.base, "sue"))
        again = await sue.next()
        assert agent(again, "Ann")["state"] == "ready"
        assert agent(again, "Ann")["since"] == agent(red, "Ann")["since"]
        assert {q["queue"] for q in again["queues"]} == {"general", "billing", "vip"}
        for c in (sue, sam, ada):
            await c.close()
        await ws_ann.close()
        await ws_bob.close()


async def test_updates_are_coalesced_and_the_same_bytes_go_to_every_client(database):
    store = _store(database)
    await seed_board(store)
    async with running_center(database) as rc:
        center = rc.app[CENTER]
        board = center.wallboard
        sue = await Board.open(rc.base, await cookie_for(rc.base, "sue"))
        sky = await Board.open(rc.base, await cookie_for(rc.base, "sky"))
        await sue.next()
        await sky.next()
        aid = str((await store.get_user("ann")).id)
        built = board.published
        started = time.monotonic()
        changes = 60
        for i in range(changes):  # 60 changes over about 0.6 s (paced; nothing waits on it)
            ready = i % 2 == 0
            await center.runner.handle(AgentPresence(aid, Presence.READY if ready else Presence.NOT_READY,
                                                     None if ready else "break"))
            await asyncio.sleep(0.01)
        await center.runner.handle(AgentPresence(aid, Presence.READY))
        last_sue = await sue.next(lambda f: f["seq"] >= board.stats.version)
        last_sky = await sky.next(lambda f: f["seq"] >= board.stats.version)
        elapsed = time.monotonic() - started
        assert agent(last_sue, "Ann")["state"] == "ready"
        # at most one update per 0.1 s per client, and far fewer than the changes
        assert len(sue.raw) - 1 <= elapsed / 0.1 + 2, (len(sue.raw), elapsed)
        assert len(sue.raw) - 1 < changes / 2
        assert board.published - built <= elapsed / 0.1 + 2
        # serialized once: the two red supervisors got the very same frames
        assert sue.raw[-1] == sky.raw[-1] and last_sue == last_sky
        assert set(sue.raw[1:]) & set(sky.raw[1:])
        await sue.close()
        await sky.close()


async def test_console_messages_on_the_wallboard_socket_are_role_checked(database):
    store = _store(database)
    await seed_board(store)
    async with running_center(database) as rc:
        sue = await Board.open(rc.base, await cookie_for(rc.base, "sue"))
        await sue.next()
        await sue.send("wallboard_callback", interaction_id=999999, request_id="cb")
        err = await sue.next(lambda m: m.get("request_id") == "cb", type_="error")
        assert err["code"] == "not_found"
        await sue.send("set_state", state="ready", request_id="st")  # an agent's message
        err = await sue.next(lambda m: m.get("request_id") == "st", type_="error")
        assert err["code"] == "forbidden"
        await sue.close()


async def test_a_time_based_alert_shows_on_the_board_and_reaches_supervisors_consoles(database):
    store = _store(database)
    await seed_board(store)
    async with running_center(database, CC_WALLBOARD__NOT_READY_S="0.2") as rc:
        sue = await Board.open(rc.base, await cookie_for(rc.base, "sue"))
        await sue.next()
        ws_sue, sue_console = await open_console(rc.base, await cookie_for(rc.base, "sue"))
        await sue_console.next("hello")
        ws_ann, ann = await open_console(rc.base, await cookie_for(rc.base, "ann"))
        await ann.send("set_state", state="not_ready", reason="break")
        await ann.next("agent_state", state="not_ready")
        # no event follows: the board's own check notices the threshold passing
        frame = await sue.next(lambda f: any(a["kind"] == "not_ready_too_long" for a in f["alerts"]))
        alert = next(a for a in frame["alerts"] if a["kind"] == "not_ready_too_long")
        assert "Ann" in alert["message"] and "(break)" in alert["message"]
        stored = await sue_console.next("alert", kind="wallboard")
        assert stored["message"] == alert["message"]
        await ann.send("set_state", state="ready")
        await sue.next(lambda f: not f["alerts"])
        for ws in (ws_sue, ws_ann):
            await ws.close()
        await sue.close()
