"""Campaigns in the running center, over the real console websocket (every frame checked against
its schema) and the simulated PBX (AMI over TCP): preview (the record and the script, skip with a
reason, dial through the click-to-dial path), progressive (the pop as the customer answers, the
disposition), the rules before each dial, a stop mid-run, and the supervisor's live progress."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from callcenter.asterisk.simulator.outbound import OutboundScript
from crm_core.campaigns import CampaignStore
from tests.callcenter.test_console_ws import _store, cookie_for, open_console
from tests.callcenter.voice_harness import VIP_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(120)
NOON_NY = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
ENV = {"CC_CALLBACKS__POLL_S": "0", "CC_CHAT__DEMO_SITE_PORT": ""}


async def _campaign(database, store, mode: str, **kw):
    cs = CampaignStore(database)
    camp = await cs.create(
        name=f"winback-{mode}",
        mode=mode,
        script="Hello {name}, about your renewal...",
        dispositions=["sale", "no_sale"],
        schedule={"hours": ["09:00", "20:00"]},
        **kw,
    )
    await cs.add_segment(camp.id, {})
    return cs, camp


async def _supervisor(store):
    await store.create_user("sup", "agent-password", roles=["supervisor"], display_name="Sam Sup")


async def test_progressive_pop_as_the_customer_answers_then_disposition(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    await _supervisor(store)
    await store.update_customer(people["regular"].id, type="blacklisted")  # never called
    cs, camp = await _campaign(database, store, "progressive")
    async with running_center(database, **ENV) as rc:
        svc = rc.center.campaigns
        svc.utc = lambda: NOON_NY
        rc.sim.outbound(OutboundScript(answer=1.0, machine=0, busy=0, ring_s=1, talk_s=3600, seed=1))
        rc.sim.agent("1001", answer_after=0.2, talk_time=None)
        events = rc.sim.subscribe()
        ws_s, sup = await open_console(rc.base, await cookie_for(rc.base, "sup"))
        await sup.next("hello")
        await sup.send("campaign_watch", campaign_id=camp.id, request_id="w")
        first = await sup.next("campaign_progress", request_id="w")
        assert first["status"] == "draft" and first["remaining"] == 1  # the blacklisted is not on the list

        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.next("hello")
        await c.send("campaign_join", campaign_id=camp.id, request_id="j")
        joined = await c.next("campaign_joined", request_id="j")
        assert joined["script"].startswith("Hello") and joined["dispositions"] == ["sale", "no_sale"]
        await c.next("agent_state", state="not_ready")

        await sup.send("campaign_control", campaign_id=camp.id, action="start", request_id="s")
        await sup.next("campaign_progress", request_id="s")
        pop = await c.next("campaign_record", kind="pop")
        assert pop["pop"]["known"] and pop["pop"]["card"]["customer"]["name"] == "Victoria Important"
        assert pop["record"]["phone"] == VIP_PHONE and pop["script"].startswith("Hello")
        iid = pop["interaction_id"]
        # the customer was called first; the agent's phone rang only after the customer answered
        names = []
        while True:
            e = await events.get()
            names.append((e.name, e.get("DestChannel") or e.get("Channel") or ""))
            if e.name == "DialBegin" and (e.get("DestChannel") or "").startswith("PJSIP/1001"):
                break
        dials = [ch for n, ch in names if n == "DialBegin"]
        assert dials[0].startswith("PJSIP/12025550143@trunk") and dials[-1].startswith("PJSIP/1001")
        assert ("VarSet",) and any(n == "OriginateResponse" for n, _ in names)

        # the customer hangs up: the agent wraps up with one of the campaign's codes
        customer = next(
            ch
            for ch in rc.sim.pbx.channels.values()
            if ch.name.startswith("PJSIP/12025550143@trunk") and not ch.hungup
        )
        rc.sim.pbx.request_hangup(customer)
        wrap = await c.next("campaign_state", state="wrap")
        assert wrap["interaction_id"] == iid
        await c.send("campaign_disposition", record_id=pop["record"]["id"], code="bogus", request_id="bad")
        err = await c.next("error", request_id="bad")
        assert err["code"] == "invalid"
        await c.send(
            "campaign_disposition",
            record_id=pop["record"]["id"],
            code="sale",
            notes="renewed",
            request_id="d",
        )
        await c.next("campaign_state", request_id="d", state="done")
        prog = await sup.next("campaign_progress", connected=1)
        while prog["dispositions"] != {"sale": 1}:
            prog = await sup.next("campaign_progress")
        assert (prog["dialed"], prog["remaining"], prog["abandon_rate_pct"]) == (1, 0, 0.0), prog
        await ws.close()
        await ws_s.close()
    i = await store.get_interaction(iid)
    assert i.direction == "outbound" and i.state == "wrapup_done" and i.answered_at is not None
    assert i.customer_id == people["vip"].id
    kinds = [e.kind for e in await store.timeline(iid)]
    assert (
        kinds.index("campaign_dial") < kinds.index("campaign_connected") < kinds.index("campaign_disposition")
    )
    rec = (await cs.records(camp.id))[0]
    assert (rec.status, rec.disposition, rec.attempts) == ("done", "sale", 1)


async def test_preview_skip_then_dial_and_a_stop_mid_run(database):
    store = _store(database)
    people = await seed_people(store, agents=1)
    await _supervisor(store)
    cs, camp = await _campaign(database, store, "preview")
    await cs.add_dnc("phone", "+12025550199")  # not on the list anyway
    async with running_center(database, **ENV) as rc:
        svc = rc.center.campaigns
        svc.utc = lambda: NOON_NY
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.next("hello")
        await svc.control(camp.id, "start")
        french = await cs.create(name="french-only", mode="preview", skills={"french": 3})
        await c.send("campaign_join", campaign_id=french.id, request_id="f")
        assert (await c.next("error", request_id="f"))["code"] == "forbidden"  # agent1 has no French
        await c.send("campaign_join", campaign_id=camp.id, request_id="j")
        await c.next("campaign_joined", request_id="j")
        first = await c.next("campaign_record", kind="preview")
        assert first["interaction_id"] is None and first["script"].startswith("Hello")
        await c.send("campaign_skip", record_id=first["record"]["id"] + 100, reason="x", request_id="s0")
        assert (await c.next("error", request_id="s0"))["code"] == "not_found"  # not the record shown
        await c.send(
            "campaign_skip", record_id=first["record"]["id"], reason="asked for email only", request_id="s"
        )
        await c.next("campaign_state", request_id="s", state="skipped")
        second = await c.next("campaign_record", kind="preview")
        assert second["record"]["id"] != first["record"]["id"]
        rc.sim.agent(second["record"]["phone"].lstrip("+"), answer_after=0.5, talk_time=None)
        await c.send("campaign_dial", record_id=second["record"]["id"], request_id="d")
        dialing = await c.next("campaign_state", request_id="d", state="dialing")
        iid = dialing["interaction_id"]
        await c.next("contact_state", interaction_id=iid, state="ringing")  # the agent's phone first
        await c.send("answer", interaction_id=iid)
        await c.next("contact_state", interaction_id=iid, state="talking")
        await c.send("hangup", interaction_id=iid)
        await c.next("wrapup", interaction_id=iid)
        await c.send("campaign_disposition", record_id=second["record"]["id"], code="no_sale", request_id="x")
        mark = len(c.seen)
        await c.next("campaign_state", request_id="x", state="done")
        after = c.seen[mark:]
        assert any(m["type"] == "wrapup_saved" and m["interaction_id"] == iid for m in after)  # one form
        states = [m["state"] for m in after if m["type"] == "agent_state"]
        assert states and states[-1] == "not_ready", states  # still in the campaign: no inbound
        # the skipped record comes back (a CSV row added meanwhile): dialled right after the first call
        added, _ = await cs.import_csv(camp.id, "name,phone\nPat Next,+12025550177\n")
        assert added == 1
        await svc.control(camp.id, "pause")
        await svc.control(camp.id, "resume")
        third = await c.next("campaign_record", kind="preview")
        assert third["record"]["name"] == "Pat Next"
        rc.sim.agent("12025550177", answer_after=0.5, talk_time=None)
        await c.send("campaign_dial", record_id=third["record"]["id"], request_id="d3")
        iid3 = (await c.next("campaign_state", request_id="d3", state="dialing"))["interaction_id"]
        await c.next("contact_state", interaction_id=iid3, state="ringing")
        await c.send("answer", interaction_id=iid3)
        await c.next("contact_state", interaction_id=iid3, state="talking")
        await c.send("hangup", interaction_id=iid3)
        await c.next("wrapup", interaction_id=iid3)
        await c.send("campaign_disposition", record_id=third["record"]["id"], code="sale", request_id="x3")
        await c.next("campaign_state", request_id="x3", state="done")
        await c.next("campaign_state", state="empty")  # the list is worked through
        # stopped: nothing more is offered, even when records come back
        stopped = await svc.control(camp.id, "stop")
        assert stopped.status == "stopped"
        await cs.add_segment(camp.id, {})  # nothing new (everyone is on it already)
        await ws.close()
    recs = {r.id: r for r in await cs.records(camp.id)}
    assert recs[first["record"]["id"]].status == "skipped"
    assert (recs[second["record"]["id"]].status, recs[second["record"]["id"]].disposition) == (
        "done",
        "no_sale",
    )
    i = await store.get_interaction(iid)
    assert i.direction == "outbound" and i.answered_at is not None
    kinds = [e.kind for e in await store.timeline(iid)]
    assert "campaign_dial" in kinds and "campaign_disposition" in kinds
    st = await cs.stats(camp.id)
    assert st["outcomes"] == {"skipped": 1, "dialed": 2}
    assert (await store.get_interaction(iid)).state == "wrapup_done"
    assert people  # the two seeded customers were the list


async def test_a_stopped_predictive_campaign_dials_nothing_more(database):
    store = _store(database)
    await seed_people(store, agents=1)
    cs = CampaignStore(database)
    camp = await cs.create(
        name="busy-list",
        mode="predictive",
        dispositions=["sale"],
        max_attempts=1,
        schedule={"hours": ["09:00", "20:00"]},
    )
    rows = "".join(f"Person {i},+1202555{1000 + i}\n" for i in range(40))
    assert (await cs.import_csv(camp.id, "name,phone\n" + rows))[0] == 40
    async with running_center(database, **ENV) as rc:
        svc = rc.center.campaigns
        svc.utc = lambda: NOON_NY
        rc.sim.outbound(OutboundScript(answer=0.0, machine=0.0, busy=1.0, seed=2))  # every line busy
        events = rc.sim.subscribe()
        ws, c = await open_console(rc.base, await cookie_for(rc.base, "agent1"))
        await c.next("hello")
        await c.send("campaign_join", campaign_id=camp.id, request_id="j")
        await c.next("campaign_joined", request_id="j")
        await svc.control(camp.id, "start")
        # wait until some calls were placed and failed busy
        busy = 0
        while busy < 3:
            e = await asyncio.wait_for(events.get(), 20)
            busy += e.name == "OriginateResponse" and e.get("Reason") == "5"
        await svc.control(camp.id, "stop")
        run = svc.runs[camp.id]
        at_stop = run.dialer.counts["dialed"]  # Originates sent (an Originate is written synchronously)
        await asyncio.wait_for(run.task, 10)  # the dial loop has ended: nothing more can be placed
        placed = run.dialer.counts["dialed"]
        assert placed == at_stop  # not one Originate after the stop
        await ws.close()
    st = await cs.stats(camp.id)
    records = await cs.records(camp.id)
    tried = [r for r in records if r.attempts > 0 or r.status != "pending"]
    assert 3 <= placed < 40 and len(tried) <= placed
    assert sum(1 for r in records if r.status == "pending" and r.attempts == 0) >= 40 - placed
    assert st["outcomes"].get("busy", 0) >= 3
