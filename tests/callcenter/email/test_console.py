"""Email contacts in the console over real websockets: capacity, decline, another agent's email,
a console that reconnects, and a restart that loses nothing."""
from __future__ import annotations

import asyncio

import pytest

from crm_core import email as mail
from crm_core.db import Database
from tests.callcenter.email.harness import email_center
from tests.callcenter.email.harness import mail as make_mail
from tests.callcenter.email.test_flow import ready_console
from tests.callcenter.test_console_ws import cookie_for, open_console

pytestmark = pytest.mark.timeout(90)


async def send_from(ec, subject: str, who: str) -> None:
    addr = f"{who}@example.org"
    await asyncio.to_thread(ec.send, make_mail(subject, sender=f"{who.upper()} <{addr}>"), mail_from=addr)


async def test_capacity_decline_and_another_agents_email(database, tmp_path):
    async with email_center(database, tmp_path, agents=2, capacity=1,
                            CC_EMAIL__ACKNOWLEDGE="false") as ec:
        ws1, c1, _ = await ready_console(ec.base, "agent1")
        await send_from(ec, "one", "a")
        offer = await c1.next("offer")
        # agent1 declines: the email goes back and is offered to agent2 (who becomes ready now)
        await c1.send("decline_offer", offer_id=offer["offer_id"])
        withdrawn = await c1.next("offer_withdrawn")
        assert withdrawn["reason"] == "declined" and withdrawn["interaction_id"] == offer["interaction_id"]
        ws2, c2 = await open_console(ec.base, await cookie_for(ec.base, "agent2"))
        await c2.next("hello")
        await c2.send("set_state", state="ready")
        offer2 = await c2.next("offer")  # may come before the agent_state that says ready
        assert offer2["interaction_id"] == offer["interaction_id"]
        await c2.send("email_accept", offer_id=offer2["offer_id"])
        await c2.next("email")
        # agent1 cannot answer agent2's email
        await c1.send("email_reply", interaction_id=offer["interaction_id"], body="hi", request_id="x")
        err = await c1.next("error", request_id="x")
        assert err["code"] == "forbidden"
        # declining made agent1 not ready (the engine's policy); ready again.
        await c1.send("set_state", state="ready")
        await c1.next("agent_state", state="ready")
        # capacity 1: a second email goes to agent1 (agent2 is full), a third waits
        await send_from(ec, "two", "b")
        offer3 = await c1.next("offer")
        await c1.send("email_accept", offer_id=offer3["offer_id"])
        await c1.next("email")
        await send_from(ec, "three", "c")
        await ec.email.wait_processed(3)
        third = max(ec.email.contacts)
        assert ec.email.contacts[third].state == "queued"
        # agent2 finishes: the third email is offered to agent2 once its slot is free
        await c2.send("email_done", interaction_id=offer2["interaction_id"])
        await c2.next("wrapup")
        await c2.send("submit_wrapup", interaction_id=offer2["interaction_id"], disposition="resolved",
                      notes="done")
        offer4 = await c2.next("offer")
        assert offer4["interaction_id"] == third
        await ws1.close()
        await ws2.close()
    kinds = [e.kind for e in await ec.store.timeline(offer["interaction_id"])]
    assert "decline" in kinds and kinds.count("offer") == 2


async def test_a_reconnecting_console_gets_its_emails_back(database, tmp_path):
    async with email_center(database, tmp_path, CC_EMAIL__ACKNOWLEDGE="false") as ec:
        ws, c, cookie = await ready_console(ec.base)
        await asyncio.to_thread(ec.send, make_mail("Resume me"))
        offer = await c.next("offer")
        await c.send("email_accept", offer_id=offer["offer_id"])
        await c.next("email")
        await ws.close()
        ws, c = await open_console(ec.base, cookie)
        await c.next("hello")
        await c.next("contact_state", state="talking", interaction_id=offer["interaction_id"])
        view = await c.next("email", interaction_id=offer["interaction_id"])
        assert view["subject"] == "Resume me"
        await ws.close()


async def test_nothing_is_lost_across_a_restart(database, tmp_path):
    # 1. No agent is ready: the email waits in the queue when the center stops.
    async with email_center(database, tmp_path, CC_EMAIL__ACKNOWLEDGE="false") as ec:
        await asyncio.to_thread(ec.send, make_mail("waiting", sender="W <w@example.org>"),
                                mail_from="w@example.org")
        await ec.email.wait_processed(1)
    # 2. A message stored by the listener just before a crash, never processed.
    raw = make_mail("stored, not processed", sender="S <s@example.org>").as_bytes()
    stored = await mail.receive(database, raw, source="smtp", envelope_from="s@example.org",
                                envelope_to=["support@example.com"])
    assert stored is not None
    # 3. The center starts again (a new process: its own engine on the same database): both reach
    # an agent.
    again = Database(database.url.render_as_string(hide_password=False), schema=database.schema)
    try:
        async with email_center(again, tmp_path, CC_EMAIL__ACKNOWLEDGE="false") as ec:
            ws, c = await open_console(ec.base, await cookie_for(ec.base, "agent1"))
            await c.next("hello")
            await c.send("set_state", state="ready")
            callers = {(await c.next("offer"))["caller"], (await c.next("offer"))["caller"]}
            assert callers == {"w@example.org", "s@example.org"}
            await ws.close()
            kinds = [e.kind for e in await ec.store.timeline(stored.interaction_id)]
    finally:
        await again.close()
    assert "recovered" in kinds and "parsed" in kinds and "offer" in kinds
