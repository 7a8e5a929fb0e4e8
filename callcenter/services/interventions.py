"""Supervisors step into live contacts (issue 15): listen / whisper / barge on a call, observe /
whisper / take over a chat, and act on agents and waiting contacts.

Every action is checked here for team scope (agent_ui/access.py has already checked the role:
supervisor or admin): a supervisor acts only on agents of their teams, on queues open to their
teams (a queue without a team list is open to all), and on contacts whose agent or queue is
theirs; an admin acts on everything. Every action that changes something is written to the audit
log and, when it concerns a contact, to the interaction's timeline.

Calls: the supervisor's phone is called with AMI Originate into ChanSpy on the agent's channel,
options `q` (no beep), `E` (end when the call ends), `d` (DTMF 4/5/6 switch listen/whisper/barge)
plus `w` (whisper) or `B` (barge) for the first mode. A mode switch is an AMI PlayDTMF with
`Receive: yes` on the spying channel, as if the supervisor pressed 4, 5 or 6 (docs/asterisk.md).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callcenter.facade import PROTOCOL_VERSION, MessageRefused, WebUser
from callcenter.services.agents import Agent
from crm_core.errors import CrmError
from routing import (
    AgentPresence,
    ContactFinished,
    ContactMoved,
    ContactStatus,
    Presence,
    PriorityRaised,
    RoutingError,
)

log = logging.getLogger(__name__)

Handler = Callable[[WebUser, dict[str, Any]], Awaitable[dict[str, Any] | None]]

SPY_FLAGS = {"listen": "", "whisper": "w", "barge": "B"}
SPY_DIGITS = {"listen": "4", "whisper": "5", "barge": "6"}
SPY_OPTIONS = "qEd"  # quiet, exit with the spied call, DTMF 4/5/6 switch modes


def spy_data(agent_channel: str, mode: str) -> str:
    """ChanSpy's argument: the agent's channel and the options for `mode`."""
    return f"{agent_channel},{SPY_OPTIONS}{SPY_FLAGS[mode]}"


@dataclass
class Spy:
    """One supervisor listening in on one call."""

    interaction_id: int
    user_id: int
    mode: str
    device: str  # the supervisor's phone (PJSIP/2001)
    action_id: str
    state: str = "dialing"  # dialing, active, ended
    channel: str | None = None  # the spying channel, once ChanSpyStart names it


@dataclass
class Observers:
    users: set[int] = field(default_factory=set)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Interventions:
    """The supervisors' console messages. `center` is callcenter.services.center.Center."""

    def __init__(self, center: Any) -> None:
        self.center = center
        self.store, self.hub, self.directory = center.store, center.hub, center.directory
        self.runner, self.voice = center.runner, center.voice
        self.spies: dict[tuple[int, int], Spy] = {}  # (interaction, supervisor user) -> spy
        self.observers: dict[int, set[int]] = {}  # chat interaction -> observing users
        self._ami_task: asyncio.Task[None] | None = None
        self._ami_sub: Any = None
        self._ami_client: Any = None
        self._chat_hooked: Any = None

    def handlers(self) -> dict[str, Handler]:
        return {"spy": self.spy, "spy_stop": self.spy_stop, "chat_observe": self.chat_observe,
                "chat_whisper": self.chat_whisper, "chat_takeover": self.chat_takeover,
                "force_state": self.force_state, "force_logout": self.force_logout,
                "contact_move": self.contact_move, "contact_priority": self.contact_priority}

    async def close(self) -> None:
        if self._ami_sub is not None:
            self._ami_sub.unsubscribe()
        if self._ami_task is not None:
            self._ami_task.cancel()
            await asyncio.gather(self._ami_task, return_exceptions=True)

    # ------------------------------------------------------------------ scope
    @staticmethod
    def _admin(user: WebUser) -> bool:
        return "admin" in user.roles

    def _agent_in_scope(self, user: WebUser, agent: Agent) -> bool:
        return self._admin(user) or bool(set(agent.teams) & set(user.teams))

    async def _queue_in_scope(self, user: WebUser, queue: str) -> bool:
        """The queue's owning teams (queue_teams, as for alerts) meet the user's; a queue that no
        team owns is open to every supervisor."""
        if queue not in self.runner.engine.config.queues:
            return False
        if self._admin(user):
            return True
        owners = set((await self.store.queue_teams()).get(queue, ()))
        return not owners or bool(owners & set(user.teams))

    def _agent_named(self, user: WebUser, username: Any) -> Agent:
        agent = self.directory.agents.get(str(username)) or next(
            (a for a in self.directory.agents.values() if a.username == username), None)
        if agent is None:
            raise MessageRefused("not_found", f"no agent {username!r}")
        if not self._agent_in_scope(user, agent):
            raise MessageRefused("forbidden", f"{agent.username} is not in your teams")
        return agent

    def _check_agent(self, user: WebUser, agent_id: str | None) -> Agent:
        agent = self.directory.agents.get(agent_id or "")
        if agent is None:
            raise MessageRefused("conflict", "no agent is on this contact")
        if not self._agent_in_scope(user, agent):
            raise MessageRefused("forbidden", "that contact is handled outside your teams")
        return agent

    # ------------------------------------------------------------------ logging
    async def _log(self, user: WebUser, action: str, entity: str, entity_id: Any,
                   interaction_id: int | None = None, **data: Any) -> None:
        """The audit log, and the interaction's timeline when there is one."""
        await self.store.write_audit(user.username, f"supervisor.{action}", entity, entity_id,
                                     after={"by": user.username, **data})
        if interaction_id is not None:
            try:
                await self.store.append_event(interaction_id, "supervisor",
                                              data={"action": action, "by": user.username, **data})
            except CrmError:
                log.exception("timeline append failed for interaction %s", interaction_id)

    @staticmethod
    def _done(action: str, **fields: Any) -> dict[str, Any]:
        return {"type": "intervention_done", "v": PROTOCOL_VERSION, "action": action, "at": _now(), **fields}

    def _notice(self, agent: Agent, action: str, by: WebUser, text: str, **fields: Any) -> None:
        self.hub.send(agent.user_id, "supervisor_notice", action=action, by=by.display_name, text=text,
                      **fields)

    # ------------------------------------------------------------------ calls: listen, whisper, barge
    def _live_call(self, user: WebUser, iid: Any) -> tuple[Any, Agent]:
        call = self.voice.calls.get(iid) if isinstance(iid, int) else None
        if call is None:
            raise MessageRefused("not_found", "no such live call")
        agent = self._check_agent(user, call.agent_id)
        if call.state not in ("talking", "held") or not call.agent_channel:
            raise MessageRefused("conflict", f"the call is {call.state}, not connected to an agent")
        return call, agent

    def _spy_send(self, user: WebUser, iid: int, spy: Spy) -> None:
        self.hub.send(user.id, "spy_state", interaction_id=iid, mode=spy.mode, state=spy.state, at=_now())

    async def spy(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Start listening, whispering or barging; on a call already spied on, switch the mode."""
        mode = str(msg.get("mode"))
        if mode not in SPY_FLAGS:
            raise MessageRefused("invalid", "mode is listen, whisper or barge")
        call, agent = self._live_call(user, msg.get("interaction_id"))
        iid = call.interaction_id
        ami = self.voice.ami
        if ami is None:
            raise MessageRefused("invalid", "the PBX is not connected")
        self._watch_ami(ami)
        spy = self.spies.get((iid, user.id))
        if spy is not None and spy.state != "ended":
            if spy.state != "active" or spy.channel is None:
                raise MessageRefused("conflict", "your phone is still being called")
            if spy.mode == mode:
                return self._done("spy", interaction_id=iid, mode=mode)
            await self._ami(ami, "switch the mode", "PlayDTMF", Channel=spy.channel,
                            Digit=SPY_DIGITS[mode], Receive="yes")
            was, spy.mode = spy.mode, mode
            await self._log(user, "spy_mode", "interaction", iid, iid, mode=mode, was=was,
                            agent=agent.username)
            self._spy_send(user, iid, spy)
            return self._done("spy", interaction_id=iid, mode=mode)
        device = self._supervisor_phone(user)
        spy = Spy(iid, user.id, mode, device, f"cc-spy-{iid}-{user.id}")
        self.spies[(iid, user.id)] = spy
        try:
            await self._ami(ami, "call your phone", "Originate", ActionID=spy.action_id, Channel=device,
                            Application="ChanSpy", Data=spy_data(call.agent_channel, mode),
                            CallerID=f'"Supervise {iid}" <{user.extension}>', Timeout=30000, Async="true")
        except MessageRefused:
            self.spies.pop((iid, user.id), None)
            raise
        if spy.state == "dialing":  # (before the log's write: ChanSpyStart may follow quickly)
            self._spy_send(user, iid, spy)
        await self._log(user, "spy", "interaction", iid, iid, mode=mode, agent=agent.username, device=device)
        return self._done("spy", interaction_id=iid, mode=mode)

    async def spy_stop(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        iid = msg.get("interaction_id")
        spy = self.spies.get((iid, user.id)) if isinstance(iid, int) else None
        if spy is None or spy.state == "ended":
            raise MessageRefused("not_found", "you are not on that call")
        if spy.channel is None:
            raise MessageRefused("conflict", "your phone is still being called")
        if self.voice.ami is None:
            raise MessageRefused("invalid", "the PBX is not connected")
        await self._ami(self.voice.ami, "hang up your phone", "Hangup", Channel=spy.channel)
        await self._log(user, "spy_stop", "interaction", spy.interaction_id, spy.interaction_id)
        return self._done("spy_stop", interaction_id=spy.interaction_id)  # spy_state ended follows

    def _supervisor_phone(self, user: WebUser) -> str:
        ext = user.extension
        if not ext:
            raise MessageRefused("invalid", "you have no phone extension to listen on")
        device = ext if "/" in ext else f"PJSIP/{ext}"
        sim = getattr(self.voice.softphone, "sim", None)
        if sim is not None:  # the simulated PBX: the supervisor's headset answers by itself
            number = device.split("/", 1)[1]
            if number not in sim.pbx.behaviours:
                sim.agent(number, answer_after=0.2, talk_time=None)
        return device

    @staticmethod
    async def _ami(ami: Any, what: str, action: str, **fields: Any) -> None:
        from callcenter.asterisk.ami import make_action

        aid = fields.pop("ActionID", None)
        try:
            result = await ami.send_action(make_action(action, fields, action_id=aid))
        except Exception as e:  # noqa: BLE001 - AMI down or slow: refused, nothing changed
            raise MessageRefused("invalid",
                                 f"The phone system could not {what} ({type(e).__name__})") from None
        if not result.ok:
            raise MessageRefused("invalid", f"The phone system refused to {what}: {result.response.message}")

    def _watch_ami(self, ami: Any) -> None:
        if self._ami_client is ami and self._ami_task is not None and not self._ami_task.done():
            return
        names = {"originateresponse", "chanspystart", "chanspystop", "hangup"}
        self._ami_client = ami
        self._ami_sub = ami.subscribe(None, filter=lambda ev: getattr(ev, "name", "").lower() in names)
        self._ami_task = asyncio.ensure_future(self._pump(self._ami_sub))

    async def _pump(self, sub: Any) -> None:
        async for ev in sub:
            try:
                self._on_event(ev)
            except Exception:  # noqa: BLE001 - one odd event must not stop the spies
                log.exception("spy event %s failed", getattr(ev, "name", "?"))

    def _on_event(self, ev: Any) -> None:
        name = ev.name.lower()
        if name == "originateresponse":
            spy = next((s for s in self.spies.values() if s.action_id == ev.get("ActionID")), None)
            if spy is not None and ev.get("Response") != "Success" and spy.state == "dialing":
                self._ended(spy, f"your phone did not answer (reason {ev.get('Reason')})")
            return
        if name == "chanspystart":
            spyer, spyee = ev.get("SpyerChannel") or "", ev.get("SpyeeChannel") or ""
            for spy in self.spies.values():
                call = self.voice.calls.get(spy.interaction_id)
                if (spy.state == "dialing" and spyer.startswith(spy.device + "-") and call is not None
                        and call.agent_channel == spyee):
                    spy.state, spy.channel = "active", spyer
                    self.hub.send(spy.user_id, "spy_state", interaction_id=spy.interaction_id, mode=spy.mode,
                                  state="active", at=_now())
                    return
            return
        channel = ev.get("SpyerChannel") if name == "chanspystop" else ev.get("Channel")
        for spy in list(self.spies.values()):
            if spy.channel is not None and spy.channel == channel and spy.state != "ended":
                self._ended(spy, None)

    def _ended(self, spy: Spy, error: str | None) -> None:
        spy.state = "ended"
        self.spies.pop((spy.interaction_id, spy.user_id), None)
        fields: dict[str, Any] = {"error": error} if error else {}
        self.hub.send(spy.user_id, "spy_state", interaction_id=spy.interaction_id, mode=spy.mode,
                      state="ended", at=_now(), **fields)

    # ------------------------------------------------------------------ chats
    def _chat(self, user: WebUser, iid: Any) -> tuple[Any, Any, Agent]:
        svc = self.center.chat
        chat = svc.chats.get(iid) if svc is not None and isinstance(iid, int) else None
        if chat is None:
            raise MessageRefused("not_found", "no such chat")
        if chat.state != "active":
            raise MessageRefused("conflict", f"the chat is {chat.state}")
        return svc, chat, self._check_agent(user, chat.agent_id)

    def _hook_chat(self, svc: Any) -> None:
        if self._chat_hooked is svc:
            return
        self._chat_hooked = svc
        svc.watchers.append(self._chat_stored)

    def _chat_stored(self, chat: Any, view: dict[str, Any]) -> None:
        for uid in self.observers.get(chat.interaction_id, ()):
            self.hub.send(uid, "observed_message", interaction_id=chat.interaction_id, message=view)

    async def chat_observe(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Join a chat as a silent observer (`on: false` leaves it): the transcript so far, then
        every message as it is stored. The customer is not told."""
        iid = msg.get("interaction_id")
        if msg.get("on") is False:
            watching = self.observers.get(iid) if isinstance(iid, int) else None
            if not watching or user.id not in watching:
                raise MessageRefused("not_found", "you are not observing that chat")
            watching.discard(user.id)
            return self._done("chat_observe", interaction_id=iid, on=False)
        svc, chat, agent = self._chat(user, iid)
        self._hook_chat(svc)
        self.observers.setdefault(chat.interaction_id, set()).add(user.id)
        from callcenter.channels.chat.state import REPLAY_LIMIT

        messages = [svc._view(m) for m in await svc.log.since(chat.interaction_id, 0, REPLAY_LIMIT)]
        await self._log(user, "chat_observe", "interaction", chat.interaction_id, chat.interaction_id,
                        agent=agent.username)
        self.hub.send(user.id, "chat_observed", interaction_id=chat.interaction_id, agent=agent.display_name,
                      customer_name=chat.name, messages=messages)
        return self._done("chat_observe", interaction_id=chat.interaction_id, on=True)

    async def chat_whisper(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        """A note to the agent only: on the agent's console and the timeline, never in the
        transcript the customer sees."""
        from callcenter.channels.chat.content import ContentRefused, check_text

        svc, chat, agent = self._chat(user, msg.get("interaction_id"))
        try:
            text = check_text(msg.get("text"), svc.options.max_message_chars)
        except ContentRefused as e:
            raise MessageRefused(e.code, str(e)) from None
        await self._log(user, "chat_whisper", "interaction", chat.interaction_id, chat.interaction_id,
                        agent=agent.username, text=text)
        at = _now()
        self.hub.send(agent.user_id, "whisper", interaction_id=chat.interaction_id, by=user.display_name,
                      text=text, at=at)
        for uid in self.observers.get(chat.interaction_id, set()) | {user.id}:
            self.hub.send(uid, "whisper", interaction_id=chat.interaction_id, by=user.display_name, text=text,
                          at=at)
        return self._done("chat_whisper", interaction_id=chat.interaction_id)

    async def chat_takeover(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        """The supervisor takes the chat: the agent is released at once (no wrap-up), the customer
        sees the supervisor's name, and the supervisor's console opens the chat (and wraps it up)."""
        from callcenter.channels.chat.state import msg as widget_msg

        svc, chat, agent = self._chat(user, msg.get("interaction_id"))
        sup_id = str(user.id)
        if chat.agent_id == sup_id:
            raise MessageRefused("conflict", "you already handle this chat")
        if chat.routed:
            try:
                await self.runner.handle(ContactFinished(chat.contact_id, agent.agent_id, wrap_up_s=0.0))
            except RoutingError as e:
                raise MessageRefused("conflict", f"the chat could not be released: {e}") from None
            chat.routed = False  # it stays outside routing with the supervisor
        if self.directory.agents.get(sup_id) is None:  # a supervisor without a routing profile
            self.directory.agents[sup_id] = Agent(user.id, user.username, user.display_name, None, user.teams)
        chat.agent_id = sup_id
        iid = chat.interaction_id
        self.hub.send(agent.user_id, "wrapup_saved", interaction_id=iid, disposition="taken_over",
                      ticket=None)
        self._notice(agent, "chat_takeover", user,
                     f"{user.display_name} took over the chat with {chat.name}.",
                     interaction_id=iid)
        await svc._event(chat, "takeover", by=user.username, agent=agent.username)
        await self._log(user, "chat_takeover", "interaction", iid, iid, agent=agent.username)
        try:
            await self.store.update_interaction(iid, agent_id=user.id)
        except (CrmError, TypeError):
            log.exception("chat %s: could not record the new agent", iid)
        svc._to_widgets(chat, widget_msg("agent", name=user.display_name))
        await svc._store(chat, "system", f"{user.display_name} joined the chat.")
        await svc._send_started(chat, user.id)
        self.directory.push_state(agent.agent_id)
        return self._done("chat_takeover", interaction_id=iid)

    # ------------------------------------------------------------------ agents
    async def force_state(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        agent = self._agent_named(user, msg.get("agent"))
        state, reason = str(msg.get("state")), msg.get("reason")
        presence = {"ready": Presence.READY, "not_ready": Presence.NOT_READY}.get(state)
        if presence is None:
            raise MessageRefused("invalid", "state must be ready or not_ready")
        if state == "not_ready" and reason not in {c for c, _ in self.center.console.reason_codes}:
            raise MessageRefused("invalid", f"unknown reason code {reason!r}")
        note = str(msg.get("note") or "")[:500]
        was = self.directory.status(agent.agent_id)["state"]
        await self.runner.handle(AgentPresence(agent.agent_id, presence,
                                               reason if state == "not_ready" else None))
        self.directory.push_state(agent.agent_id)
        await self._log(user, "force_state", "user", agent.user_id, agent=agent.username, state=state,
                        reason=reason, note=note, was=was)
        self._notice(agent, "force_state", user, f"{user.display_name} set you {state.replace('_', '-')}"
                     + (f" ({reason})" if state == "not_ready" else "") + (f": {note}" if note else "."))
        return self._done("force_state", agent=agent.username, state=state)

    async def force_logout(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Take the agent out of routing (an unanswered offer goes back to its queue) and end their
        web sessions: their consoles close with 4401 when they next check (docs/protocol.md)."""
        agent = self._agent_named(user, msg.get("agent"))
        note = str(msg.get("note") or "")[:500]
        was = self.directory.status(agent.agent_id)["state"]
        await self.runner.handle(AgentPresence(agent.agent_id, Presence.OFFLINE, "logged-out"))
        self.directory.push_state(agent.agent_id)
        self._notice(agent, "force_logout", user, f"{user.display_name} signed you out"
                     + (f": {note}" if note else "."))
        ended = await self.center.auth.logout_user(agent.user_id)
        await self._log(user, "force_logout", "user", agent.user_id, agent=agent.username, note=note, was=was,
                        sessions=ended)
        return self._done("force_logout", agent=agent.username, state="offline")

    # ------------------------------------------------------------------ waiting contacts
    async def _waiting(self, user: WebUser, iid: Any) -> Any:
        rec = self.runner.engine.store.contact(str(iid)) if isinstance(iid, int) else None
        if rec is None:
            raise MessageRefused("not_found", "no such contact in routing")
        if not await self._queue_in_scope(user, rec.queue):
            raise MessageRefused("forbidden", f"queue {rec.queue} is not one of your teams' queues")
        if rec.status is not ContactStatus.WAITING:
            raise MessageRefused("conflict", f"the contact is {rec.status.value}, not waiting")
        return rec

    async def contact_move(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        iid = msg.get("interaction_id")
        rec = await self._waiting(user, iid)
        queue, username = msg.get("queue"), msg.get("agent")
        if (queue is None) == (username is None):
            raise MessageRefused("invalid", "move the contact to a queue or to an agent")
        was = rec.queue
        if queue is not None:
            if not await self._queue_in_scope(user, str(queue)):
                known = queue in self.runner.engine.config.queues
                raise MessageRefused("forbidden" if known else "not_found",
                                     f"no queue {queue!r} of your teams")
            event = ContactMoved(str(iid), queue=str(queue))
            target = {"queue": str(queue)}
        else:
            agent = self._agent_named(user, username)
            event = ContactMoved(str(iid), agent_id=agent.agent_id)
            target = {"agent": agent.username}
        await self.runner.handle(event)
        await self._log(user, "contact_move", "interaction", iid, int(iid), was=was, **target)
        return self._done("contact_move", interaction_id=iid, **target)

    async def contact_priority(self, user: WebUser, msg: dict[str, Any]) -> dict[str, Any] | None:
        iid = msg.get("interaction_id")
        rec = await self._waiting(user, iid)
        by = msg.get("by")
        if not isinstance(by, (int, float)) or isinstance(by, bool) or not 0 < by <= 1000:
            raise MessageRefused("invalid", "raise the priority by a number from 0 to 1000")
        before = rec.boost
        await self.runner.handle(PriorityRaised(str(iid), float(by)))
        await self._log(user, "contact_priority", "interaction", iid, int(iid), by=by, queue=rec.queue,
                        boost=before + float(by))
        return self._done("contact_priority", interaction_id=iid, by=by)
