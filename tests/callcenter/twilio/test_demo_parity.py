"""The shipped demo flow through TwiML ends as it does through AGI: the same interaction path, the
same queue, the same pop. The same caller presses the same keys on the simulated Asterisk (FastAGI
and AMI over TCP) and then on the simulated Twilio (signed webhooks over HTTP)."""
from __future__ import annotations

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.twilio.harness import running_twilio
from tests.callcenter.voice_harness import REGULAR_PHONE, VIP_PHONE, Console, running_center, seed_people

pytestmark = pytest.mark.timeout(90)

# English, billing, an account number, hear the balance, then a billing agent
BILLING = ["1", "1", "1234567", "1"]


async def _offer(rc, store) -> dict:
    console = await Console.open(rc.center, store, "agent1")
    await console.send("set_state", state="ready")
    return await console.next("offer", timeout=20)


async def _timeline(store, iid: int) -> dict[str, dict]:
    return {e.kind: e.data for e in await store.timeline(iid)}


def _stable(offer: dict) -> dict:
    """The offer without what differs by design (ids, times, the first call in the history)."""
    card = offer["pop"]["card"] or {}
    return {"keys": sorted(offer), "queue": offer["queue"], "caller": offer["caller"],
            "ivr_path": offer["ivr_path"], "known": offer["pop"]["known"],
            "customer": {k: (card.get("customer") or {}).get(k) for k in ("id", "name", "tier", "type")},
            "open_tickets": card.get("open_tickets"),
            # what the call brought to routing (the rest depends on who was ready first)
            "weights": {r["name"]: r["value"] for r in offer["reasons"]
                        if r["name"] in ("tier_weight", "queue_weight")}}


@pytest.mark.parametrize("caller,digits,queue",
                         [(REGULAR_PHONE, BILLING, "billing"), (VIP_PHONE, ["2"], "vip")])
async def test_demo_flow_through_twiml_as_through_agi(database, caller, digits, queue):
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    async with running_center(database, CC_CHAT__ENABLED="false", CC_EMAIL__ENABLED="false") as rc:
        call = rc.sim.call(caller, digits=digits)
        agi = await _offer(rc, store)
        call.hangup()
        await call.wait_hangup(10)
    async with running_twilio(database) as rc:
        tcall = rc.twilio.call(caller, digits=digits)
        twilio = await _offer(rc, store)
        tcall.hangup()
        await tcall.wait_ended()
    assert agi["queue"] == queue
    assert _stable(twilio) == _stable(agi)
    a, t = await _timeline(store, agi["interaction_id"]), await _timeline(store, twilio["interaction_id"])
    assert t["ivr"] == a["ivr"] and t["queue"] == a["queue"] and t["identify"] == a["identify"]
    ia = await store.get_interaction(agi["interaction_id"])
    it = await store.get_interaction(twilio["interaction_id"])
    assert it.ivr_path == ia.ivr_path and it.queue == ia.queue and it.customer_id == ia.customer_id
