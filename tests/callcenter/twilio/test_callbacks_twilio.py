"""Callbacks on Twilio calls, as on Asterisk: the IVR's callback step schedules one, and a routing
escalation asks the waiting caller (a <Gather> reached through the REST API) and, when they take
it, ends the call with the confirmation and schedules the callback."""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.callbacks import CallbackStore
from routing import OfferCallbackStep
from tests.callcenter.twilio.harness import running_twilio
from tests.callcenter.voice_harness import REGULAR_PHONE, seed_people

pytestmark = pytest.mark.timeout(60)
ENV = {"CC_CALLBACKS__POLL_S": "0"}  # the scheduler does not run by itself


def _store(database):
    return build_store(load_settings(env={}), database)


def _subsequence(wanted: list[str], kinds: list[str]) -> bool:
    it = iter(kinds)
    return all(any(k == w for k in it) for w in wanted)


async def test_ivr_callback_step_schedules_a_callback(database):
    store = _store(database)
    people = await seed_people(store)
    async with running_twilio(database, **ENV) as rc:
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "3", "1"])  # English, call me back, confirm
        await call.wait_ended()
        i = await store.find_interaction(call.sid)
    tl = await store.timeline(i.id)
    scheduled = [e for e in tl if e.kind == "callback_scheduled"]
    assert scheduled and scheduled[0].ok and scheduled[0].data["number"] == REGULAR_PHONE
    cb = await CallbackStore(database).get(scheduled[0].data["callback_id"])
    assert (cb.origin, cb.status, cb.customer_id) == ("ivr", "scheduled", people["regular"].id)
    assert (await store.get_interaction(i.id)).state == "wrapup_done"
    assert call.verbs[-1][0] == "Hangup" and "Thank you. We will call you back." in call.said()


async def test_routing_escalation_offers_a_callback_the_caller_takes_it(database):
    store = _store(database)
    people = await seed_people(store)
    async with running_twilio(database, **ENV) as rc:
        queues = rc.center.runner.engine.config.queues
        queues["general"] = dataclasses.replace(queues["general"], escalation=(OfferCallbackStep(0.5),))
        # English, "0" for an agent (nobody is ready), then "1" when offered a callback
        call = rc.twilio.call(REGULAR_PHONE, digits=["1", "0", "1"])
        await call.wait_ended()
        i = await store.find_interaction(call.sid)
        offer = [r for r in rc.twilio.rest.requests if r["form"].get("Url", "").endswith("/twilio/offer?k=1")]
        assert offer, rc.twilio.rest.requests
        last = rc.twilio.rest.requests[-1]["form"]["Twiml"]
        assert [v.tag for v in ET.fromstring(last)] == ["Say", "Hangup"]
        assert "To be called back instead of waiting, press 1." in call.said()
    tl = await store.timeline(i.id)
    kinds = [e.kind for e in tl]
    assert _subsequence(["queue", "offercallback", "callback_offered", "callback_scheduled", "end"], kinds), \
        " ".join(kinds)
    i = await store.get_interaction(i.id)
    assert i.state == "wrapup_done" and i.answered_at is None
    sched = next(e for e in tl if e.kind == "callback_scheduled")
    cb = await CallbackStore(database).get(sched.data["callback_id"])
    assert (cb.origin, cb.number, cb.queue) == ("escalation", REGULAR_PHONE, "general")
    assert cb.status == "scheduled"
    assert cb.customer_id == people["regular"].id and cb.origin_interaction_id == i.id
