"""The after-dial FastAGI session on a process that did not hold the call (issue 18: FastAGI
sessions land on any process).

The agent did not answer and the dialplan came back into `after-dial` on this process. It takes
the call over instead of dropping it: the process that held the call, if it is alive, hands over
what it knows and forgets the call (`release`); a dead holder's call is rebuilt from the database
(the interaction) and the shared routing store (the contact). Then the usual path: the offer to
the agent who was dialled is refused (ring-no-answer: the contact keeps its place), the caller
waits on music on hold, and the next agent is dialled. From then on this process holds the call:
routing decisions and AMI events about it come here (scaleout/setup.py forwards by holder).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.services.voice import PendingOffer, VoiceCall, VoiceService, _quietly
from crm_core.errors import CrmError
from routing import ContactStatus

log = logging.getLogger(__name__)

# (interaction id, linkedid) -> what the live holder knew (release()), or None
Handover = Callable[[int, str], Awaitable[dict[str, Any] | None]]
_FIELDS = ("interaction_id", "linkedid", "caller", "customer_id", "tier", "customer_name", "queue",
           "ivr_path", "state", "queued_mono", "pop_card", "agent_id", "agent_leg", "caller_channel",
           "agent_channel", "handoff", "carrier")


def release(voice: VoiceService, iid: int) -> dict[str, Any] | None:
    """On the holder: the call as it stands, for the process that took its after-dial session;
    the call is forgotten here (its pending tasks find it settled)."""
    call = voice.calls.get(iid)
    if call is None or call.transfer is not None or call.state not in ("queued", "offered", "ringing"):
        return None
    snap: dict[str, Any] = {k: getattr(call, k) for k in _FIELDS}
    offer = call.offer
    if offer is not None and not offer.settled:
        snap["offer"] = {"id": offer.id, "agent_id": offer.agent_id, "reasons": offer.reasons,
                         "expires_at": offer.expires_at, "acked": offer.ack.is_set(),
                         "message": offer.message}
        offer.settled = True
    call.state, call.offer = "moved", None
    if call.assigned is not None and not call.assigned.done():
        call.assigned.cancel()
    voice._forget(call)
    return snap


async def continue_call(voice: VoiceService, session: Any, iid: int, status: str,
                        handover: Handover | None) -> bool:
    """After-dial for a call this process does not hold. False: nothing to continue (the
    dialplan then ends the call as before)."""
    try:
        i = await voice.store.get_interaction(iid)
    except CrmError:
        return False
    if i.channel != "voice" or not i.external_id or i.state in ("wrapup_done", "abandoned", "failed",
                                                                "ended", "answered"):
        return False
    await _quietly(session.set_music(True))  # the caller waits on music while the call changes hands
    snap = None
    if handover is not None:
        try:
            snap = await handover(iid, i.external_id)
        except Exception:  # noqa: BLE001 - Redis away: rebuilt from the stores below
            log.warning("call %s: no handover from its holder", iid, exc_info=True)
    call = _from_snapshot(voice, snap) if snap else _rebuild(voice, i)
    if call is None:
        return False
    call.session, call.routed = session, True
    voice.calls[iid] = call
    voice.by_linkedid[call.linkedid] = call
    await voice._event(call, "taken_over", state=call.state, holder="alive" if snap else "gone")
    dialled = await session.get_variable("ROUTE_TO") or ""
    offer = call.offer
    agent = voice.directory.agents.get(offer.agent_id) if offer is not None else None
    if offer is not None and agent is not None and (not dialled or agent.dial_string == dialled):
        await voice.no_answer(call, status)  # the agent who was dialled did not answer
    elif offer is not None and agent is not None:  # already offered to the next agent
        if offer.ack.is_set():
            assert call.assigned is not None
            call.assigned.set_result(agent)
        else:
            if offer.message is None:  # the holder is gone: the console hears of the offer now
                offer.message = await voice.offer_message(call)
                voice.hub.send(agent.user_id, "offer", **offer.message)
            voice.spawn(voice._await_ack(call, offer, agent))
    if call.state in ("queued", "offered") and not session.hung_up:
        await _quietly(session.set_music(True))
        await voice._dial_when_assigned(call, session)
    else:
        await session.set_variable("ROUTE_TO", "")
    return True


def _from_snapshot(voice: VoiceService, snap: dict[str, Any]) -> VoiceCall:
    call = VoiceCall(**{k: snap[k] for k in _FIELDS})
    o = snap.get("offer")
    if o is not None:
        # the holder sent it to the console (or still does, its _offer goes on): not sent again
        call.offer = PendingOffer(o["id"], o["agent_id"], o["reasons"], o["expires_at"],
                                  message=o["message"] or {})
        if o["acked"]:
            call.offer.ack.set()
        call.state = "offered" if call.state == "queued" else call.state
    elif call.state in ("offered", "ringing"):
        call.state = "queued"
    # an offer the engine made while the call changed hands went to the holder, which no longer
    # had it (or to this process, which did not yet): the routing store says where it stands
    rec = voice.runner.engine.store.contact(call.contact_id)
    if rec is not None and rec.status is ContactStatus.OFFERED and rec.agent_id \
            and (call.offer is None or call.offer.agent_id != rec.agent_id):
        _offered(voice, call, rec.agent_id)
    call.assigned = asyncio.get_running_loop().create_future()
    return call


def _offered(voice: VoiceService, call: VoiceCall, agent_id: str) -> None:
    """An offer the routing store holds but no process performed (its console hears of it)."""
    expires = datetime.now(UTC) + timedelta(seconds=voice.options.ack_timeout_s)
    call.offer = PendingOffer(secrets.token_urlsafe(9), agent_id, [], expires.isoformat())
    call.state, call.agent_id = "offered", agent_id


def _rebuild(voice: VoiceService, i: Any) -> VoiceCall | None:
    """A dead holder's call: the interaction gives the call, the routing store its place."""
    rec = voice.runner.engine.store.contact(str(i.id))
    if rec is None or rec.status not in (ContactStatus.WAITING, ContactStatus.OFFERED):
        return None
    call = VoiceCall(i.id, i.external_id, i.from_address or "", customer_id=i.customer_id,
                     tier=str(rec.contact.tier.value), queue=rec.queue, ivr_path=list(i.ivr_path or []),
                     state="queued", queued_mono=voice.mono())
    if rec.status is ContactStatus.OFFERED and rec.agent_id:
        _offered(voice, call, rec.agent_id)
    call.assigned = asyncio.get_running_loop().create_future()
    return call
