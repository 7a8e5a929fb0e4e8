"""Warm transfer -> three-way conference (ConfBridge).

While the agent consults (the caller held in ``[cc-hold]``, the agent's leg bridged with the
consulted leg in ``[cc-consult]``), ``consult_conference`` sets ``CC_CONF`` on the three channels
(AMI Setvar), redirects the caller to ``[cc-conference] caller`` (a marked user) and, in one dual
Redirect, the agent's leg and the consulted leg to ``[cc-conference] member`` (end_marked).

Every step is confirmed by AMI before it is shown: each party's ConfbridgeJoin goes on the
timeline (``conference_join``); once all three are in, the timeline gets ``conference`` and the
agent's console ``conference_state`` ``active``.  The agent may leave (``conference_leave``: AMI
Hangup of their leg); their ConfbridgeLeave puts them in wrap-up and, when the consulted party
is an agent, makes the call theirs.  When the caller leaves, Asterisk kicks the end_marked
members; the last ConfbridgeLeave ends the call (``conference_end``, then the usual hang-up and
wrap-up).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from callcenter.asterisk.ami import Event as AmiEvent
from callcenter.facade import MessageRefused
from routing import ContactFinished, RoutingError

if TYPE_CHECKING:
    from callcenter.services.voice import VoiceCall, VoiceService

log = logging.getLogger(__name__)

ROLES = ("caller", "agent", "consulted")


@dataclass
class Conf:
    name: str
    call: VoiceCall
    parties: dict[str, str]  # uniqueid -> caller | agent | consulted
    channels: dict[str, str]  # role -> channel name
    target: dict[str, Any]  # the consultation's target (target_type, target, agent_id, ...)
    first_agent: str | None  # the agent who started it
    joined: set[str] = field(default_factory=set)  # roles in the conference now
    active: bool = False  # all three joined once
    agent_left: bool = False
    ended: bool = False  # the call's end was handled (the last leave and ConfbridgeEnd may race)
    gone: set[str] = field(default_factory=set)  # roles that hung up before they joined


class ConferenceControl:
    def __init__(self, voice: VoiceService) -> None:
        self.voice = voice
        self.by_name: dict[str, Conf] = {}
        self.by_linkedid: dict[str, Conf] = {}

    # ------------------------------------------------------------------ console requests
    async def start(self, call: VoiceCall) -> None:
        from callcenter.asterisk.ami import make_action

        c = call.consult
        if c is None or call.pending or call.linkedid in self.by_linkedid:
            raise MessageRefused("conflict", "no consultation under way")
        if c.get("state") != "talking" or not c.get("channel") or not c.get("uniqueid"):
            raise MessageRefused("conflict", "the consulted party has not answered")
        caller, agent, other = call.caller_channel or "", call.agent_channel or "", str(c["channel"])
        name = f"cc-{call.interaction_id}"
        parties = {call.caller_uid or call.linkedid: "caller", call.agent_leg or "": "agent",
                   str(c["uniqueid"]): "consulted"}
        conf = Conf(name, call, parties, {"caller": caller, "agent": agent, "consulted": other}, dict(c),
                    call.agent_id)
        call.pending = "conference"
        self.by_name[name], self.by_linkedid[call.linkedid] = conf, conf
        try:
            await self.voice._send(call, "conference", [
                *[make_action("Setvar", Channel=ch, Variable="CC_CONF", Value=name)
                  for ch in (caller, agent, other)],
                make_action("Redirect", Channel=caller, Context="cc-conference", Exten="caller", Priority=1),
                make_action("Redirect", Channel=agent, Context="cc-conference", Exten="member", Priority=1,
                            ExtraChannel=other, ExtraContext="cc-conference", ExtraExten="member",
                            ExtraPriority=1),
            ], target=c.get("target"))
        except MessageRefused:
            self._drop(conf)
            raise
        call.consult = None  # the consultation became the conference

    async def leave(self, call: VoiceCall) -> None:
        from callcenter.asterisk.ami import make_action

        conf = self.by_linkedid.get(call.linkedid)
        if conf is None or not conf.active or conf.agent_left or "agent" not in conf.joined:
            raise MessageRefused("conflict", "no conference to leave")
        await self.voice._send(call, "conference_leave",
                               [make_action("Hangup", Channel=conf.channels["agent"], Cause=16)],
                               pending=False, role="agent")

    async def supervisor_target(self, username: str) -> dict[str, Any]:
        """A consultation with a supervisor: a user with the supervisor role and an extension
        (supervisors take no routed calls, so they are not in the agent directory)."""
        from callcenter.services.agents import Agent
        from crm_core.errors import CrmError

        try:
            user = await self.voice.store.get_user(username)
        except CrmError:
            user = None
        if user is None or "supervisor" not in user.roles or user.disabled:
            raise MessageRefused("not_found", f"no supervisor {username!r}")
        dial = Agent(user.id, user.username, user.display_name, user.extension).dial_string
        if dial is None:
            raise MessageRefused("not_found", f"supervisor {username!r} has no phone extension")
        return {"target_type": "supervisor", "target": user.username, "dial": dial}

    def resume(self, call: VoiceCall) -> dict[str, Any] | None:
        """conference_state for a console that comes back while its call is in a conference."""
        conf = self.by_linkedid.get(call.linkedid)
        if conf is None or not conf.active:
            return None
        return {"interaction_id": call.interaction_id, "state": "active", "parties": sorted(conf.joined),
                "target": str(conf.target.get("target") or ""), "at": call.state_at}

    # ------------------------------------------------------------------ AMI
    def watching(self, ev: AmiEvent) -> bool:
        """Events this module takes: ConfBridge events, and hang-ups of a conference's call."""
        if ev.name.startswith("Confbridge"):
            return True
        return ev.name == "Hangup" and (ev.get("Linkedid") or "") in self.by_linkedid

    async def on_event(self, ev: AmiEvent) -> None:
        if ev.name == "Hangup":
            await self._hangup(ev)
            return
        conf = self.by_name.get(ev.get("Conference") or "")
        if conf is None:
            return
        role = conf.parties.get(ev.get("Uniqueid") or "")
        if ev.name == "ConfbridgeJoin" and role is not None:
            await self._joined(conf, role)
        elif ev.name == "ConfbridgeLeave" and role is not None:
            await self._left(conf, role)
        elif ev.name == "ConfbridgeEnd" and not conf.joined:
            # ConfbridgeEnd has no Linkedid, so it may be handled before the leaves (another
            # event lane): the last party's ConfbridgeLeave normally ends the call
            await self._ended(conf)

    async def _joined(self, conf: Conf, role: str) -> None:
        conf.joined.add(role)
        call = conf.call
        await self.voice._event(call, "conference_join", role=role, channel=conf.channels[role],
                                conference=conf.name)
        await self._check_active(conf)

    async def _check_active(self, conf: Conf) -> None:
        """All three joined (or the consulted party hung up before joining): the conference is on."""
        call = conf.call
        if not conf.active and conf.joined | conf.gone == set(ROLES) and {"caller", "agent"} <= conf.joined:
            conf.active = True
            call.state = "talking"
            await self.voice._event(call, "conference", conference=conf.name,
                                    target_type=conf.target.get("target_type"),
                                    target=conf.target.get("target"))
            self.voice._contact_state(call, "talking")
            self._state(conf, "active")

    async def _left(self, conf: Conf, role: str) -> None:
        conf.joined.discard(role)
        call = conf.call
        await self.voice._event(call, "conference_leave", role=role, conference=conf.name)
        if not conf.joined and conf.active:
            await self._ended(conf)  # the last one out
            return
        if "caller" not in conf.joined and role != "caller":
            return  # the caller left: Asterisk kicks the others (end_marked)
        if role == "agent" and not conf.agent_left:
            conf.agent_left = True
            self._state(conf, "left")
            await self._agent_gone(conf)
        elif role == "consulted" and conf.joined == {"caller"}:
            # the caller is alone in the conference: the call is over
            await self._hangup_caller(conf)

    async def _agent_gone(self, conf: Conf) -> None:
        """The first agent left: wrap-up for them; a consulted agent takes the call over."""
        from callcenter.services.voice import VoiceCall

        v, call = self.voice, conf.call
        aid = conf.first_agent
        if aid is not None:
            wrap = VoiceCall(call.interaction_id, call.linkedid, call.caller, customer_id=call.customer_id,
                             tier=call.tier, queue=call.queue, state="wrapup", agent_id=aid, transferred=True)
            v.wrapups[aid] = wrap
            v._contact_state(wrap, "ended")
            if not call.outside_routing:
                try:
                    await v.runner.handle(ContactFinished(call.contact_id, aid, v.options.wrapup_s))
                except RoutingError as e:
                    await v._event(call, "routing_refused", ok=False, error=str(e))
            v._send_wrapup(wrap)
            v.directory.push_state(aid)
        t = conf.target
        if t.get("target_type") == "agent" and "consulted" in conf.joined:
            dest = v.directory.agents.get(t.get("agent_id") or "")
            call.agent_id = t.get("agent_id")
            call.agent_leg = next(u for u, r in conf.parties.items() if r == "consulted")
            call.agent_channel = conf.channels["consulted"]
            call.outside_routing = True
            if dest is not None:
                await v._state(call, "answered", agent_id=dest.user_id)
            v._contact_state(call, "talking")
            self._state(conf, "active")
        else:
            call.agent_id, call.agent_leg, call.agent_channel = None, None, None
            if "consulted" not in conf.joined:
                await self._hangup_caller(conf)

    async def _hangup(self, ev: AmiEvent) -> None:
        """A party hung up before joining (the Redirects raced the hang-up). The caller: no marked
        user will leave, so the members are hung up and the call ends now if nobody joined. The
        consulted party: the conference goes on with the caller and the agent."""
        conf = self.by_linkedid.get(ev.get("Linkedid") or "")
        if conf is None:
            return
        role = conf.parties.get(ev.get("Uniqueid") or "")
        if role == "consulted" and not conf.active and role not in conf.joined:
            conf.gone.add(role)  # the consulted party hung up before joining: a two-way conference
            await self._check_active(conf)
            return
        if role != "caller" or "caller" in conf.joined:
            return
        conf.channels.pop("caller", None)
        for role in ("agent", "consulted"):
            await self._hangup_channel(conf.channels.get(role))
        if not conf.joined:
            await self._ended(conf)

    async def _hangup_caller(self, conf: Conf) -> None:
        await self._hangup_channel(conf.channels.get("caller"))

    async def _hangup_channel(self, channel: str | None) -> None:
        from callcenter.asterisk.ami import make_action

        if self.voice.ami is None or not channel:
            return
        try:
            await self.voice.ami.send_action(make_action("Hangup", Channel=channel, Cause=16))
        except Exception as e:  # noqa: BLE001 - the channel may be gone already
            log.info("hanging up %s failed: %s", channel, e)

    async def _ended(self, conf: Conf) -> None:
        if conf.ended:
            return
        conf.ended = True
        v, call = self.voice, conf.call
        self._drop(conf)
        call.pending = None
        await v._event(call, "conference_end", conference=conf.name)
        self._state(conf, "ended")
        if call.agent_id is not None:
            await v._ended(call, "caller", "conference ended")
        else:
            call.state = "done"
            await v._state(call, "ended")
            v._forget(call)

    def _drop(self, conf: Conf) -> None:
        self.by_name.pop(conf.name, None)
        if self.by_linkedid.get(conf.call.linkedid) is conf:
            del self.by_linkedid[conf.call.linkedid]
        if conf.call.pending == "conference":
            conf.call.pending = None

    def _state(self, conf: Conf, state: str) -> None:
        """conference_state to the agent whose call it is now (the first agent for ``left``)."""
        v = self.voice
        aid = conf.first_agent if state == "left" else conf.call.agent_id
        agent = v.directory.agents.get(aid or "")
        if agent is None:
            return
        parties = sorted(conf.joined)
        v.hub.send(agent.user_id, "conference_state", interaction_id=conf.call.interaction_id, state=state,
                   parties=parties, target=str(conf.target.get("target") or ""),
                   at=datetime.now(UTC).isoformat())
