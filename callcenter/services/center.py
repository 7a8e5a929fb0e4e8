"""The running center: routing, agents, voice and consoles, built from the store's catalog.
`Center` is what agent_ui sees through callcenter.facade.Facade."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.facade import WebSession, WebUser
from callcenter.services.agents import Agent, AgentDirectory
from callcenter.services.console import ConsoleService
from callcenter.services.consoles import ConsoleHub, Link
from callcenter.services.routing_runner import RoutingRunner
from callcenter.services.voice import VoiceOptions, VoiceService
from crm_core.catalog import list_queues
from crm_core.store import CrmStore
from ivr import Engine as FlowEngine
from routing import (
    AgentProfile,
    BadInput,
    Channel,
    Decision,
    Engine,
    EngineConfig,
    PresenceChanged,
    QueueConfig,
    ServiceLevel,
)

log = logging.getLogger(__name__)


class Center:
    def __init__(self, store: CrmStore, auth: Any, flow: FlowEngine, *, options: VoiceOptions,
                 queues: dict[str, QueueConfig], mono: Callable[[], float] = time.monotonic,
                 ivr_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 autotick: bool = True, routing_store: Callable[[EngineConfig], Any] | None = None) -> None:
        self.store = store
        self.auth = auth
        self.hub = ConsoleHub()
        config = EngineConfig(queues=queues, ring_timeout_s=options.ack_timeout_s + 60.0,
                              wrap_up_s={Channel.VOICE: options.wrapup_s, Channel.CHAT: options.wrapup_s,
                                         Channel.EMAIL: options.wrapup_s})
        # routing_store: e.g. the Redis store when several processes share one center (scaleout/)
        self.engine = Engine(config, routing_store(config) if routing_store is not None else None)
        self.shared_routing = routing_store is not None
        self.runner = RoutingRunner(self.engine, self._perform, clock=mono, autotick=autotick)
        self.directory = AgentDirectory(self.engine, self.hub, mono=mono)
        self.voice = VoiceService(store, self.runner, self.directory, self.hub, flow,
                                  self._lookups(), options=options, mono=mono, ivr_clock=ivr_clock)
        self.console = ConsoleService(store, self.hub, self.directory, self.runner, self.voice,
                                      reconnect_grace_s=options.reconnect_grace_s)
        # Services that act on routing decisions for their own contacts (voice, chat, email, ...).
        # Each `perform(decisions)` ignores contacts it does not own and returns the agents touched.
        self.performers: list[Any] = [self.voice]
        self.chat: Any = None  # callcenter.channels.chat.ChatService, once attach_chat ran
        self.email: Any = None  # callcenter.channels.email.EmailService (channels/email/setup.py)
        # Called with (user, link) after a console connects, to resume each channel's contacts.
        self.on_console_connect: list[Any] = []
        # Several processes (callcenter/scaleout/setup.py): decisions about contacts another
        # process holds go there; so do console actions on a call this process does not know.
        self.forward: Any = None
        self.forward_console: Any = None
        self.wallboard: Any = None  # services/wallboard.py, once installed (fed by runner.observers)
        # Supervisors' interventions on live contacts, agents and queues (issue 15)
        from callcenter.services.interventions import Interventions

        self.interventions = Interventions(self)
        self.console.handlers.update(self.interventions.handlers())

    # ------------------------------------------------------------------ building
    async def load_agents(self) -> int:
        users = await self.store.list_users(role="agent")
        for u in users:
            if self.directory.agents.get(str(u.id)) is not None:
                continue
            caps = {Channel.VOICE: u.capacity_voice, Channel.CHAT: u.capacity_chat,
                    Channel.EMAIL: u.capacity_email}
            teams = tuple(t.name for t in u.teams)
            profile = AgentProfile(str(u.id), dict(u.skill_map), team=teams[0] if teams else None,
                                   capacity=caps)
            agent = Agent(u.id, u.username, u.display_name, u.extension, teams)
            try:
                await self.runner.add_agent(profile)
            except BadInput:  # several processes share the routing store: another one added it
                if not self.shared_routing:
                    raise
            self.directory.add(agent, profile)
        return len(users)

    def _lookups(self) -> dict[str, Any]:
        store = self.store

        async def identify_caller(phone: str = "", **_: Any) -> dict[str, Any] | None:
            c = await store.identify(phone=phone) if phone else None
            if c is None:
                return None
            return {"id": c.id, "name": c.name, "tier": c.tier, "type": c.type,
                    "language": c.language or ""}

        async def account_balance(account: str = "", **_: Any) -> dict[str, Any] | None:
            # The demo's billing system: a deterministic balance per account number.
            if not account or not account.isdigit():
                return None
            cents = (int(account) * 7919) % 100_000
            return {"balance": f"{cents // 100}.{cents % 100:02d}", "currency": "dollars"}

        return {"identify_caller": identify_caller, "account_balance": account_balance}

    # ------------------------------------------------------------------ decisions
    async def _perform(self, decisions: list[Decision]) -> None:
        if self.forward is not None:
            await self.forward(decisions)
        touched: set[str] = set()
        for performer in self.performers:
            touched |= await performer.perform(decisions)
        for d in decisions:
            if isinstance(d, PresenceChanged):
                touched.add(d.agent_id)
        for agent_id in touched:
            self.directory.push_state(agent_id)

    # ------------------------------------------------------------------ Facade
    async def login(self, username: str, password: str, remote: str) -> WebSession:
        session: WebSession = await self.auth.login(username, password, remote)
        return session

    async def session(self, token: str) -> WebSession | None:
        result: WebSession | None = await self.auth.session(token)
        return result

    async def logout(self, token: str) -> None:
        await self.auth.logout(token)

    async def connect_console(self, user: WebUser) -> Link:
        link = await self.console.connect(user)
        for hook in self.on_console_connect:
            await hook(user, link)
        return link

    async def wallboard_subscribe(self, user: WebUser) -> Any:
        """A supervisor's wallboard feed (services/wallboard.py): a full snapshot, then updates."""
        from callcenter.facade import MessageRefused

        if self.wallboard is None:
            raise MessageRefused("not_found", "the wallboard is not running")
        return await self.wallboard.subscribe(user)

    def attach_chat(self, options: Any, bot: Any = None) -> Any:
        """Web chat: its service joins the performers and the console's handlers."""
        from callcenter.channels.chat.service import ChatService

        self.chat = ChatService(self.store, self.runner, self.directory, self.hub, options, bot=bot,
                                lookups=self._lookups(), mono=self.runner.clock,
                                ivr_clock=self.voice.ivr_clock)
        self.performers.append(self.chat)
        self.console.handlers.update(self.chat.console_handlers())
        self.on_console_connect.append(self.chat.console_connected)
        return self.chat

    # --- web chat widget (Facade)
    def chat_origin_allowed(self, site: str, origin: str | None) -> bool:
        return self.chat is not None and bool(self.chat.options.origin_allowed(site, origin))

    def chat_open(self, site: str, origin: str, remote: str) -> Any:
        from callcenter.facade import MessageRefused

        if self.chat is None:
            raise MessageRefused("forbidden", "web chat is not enabled")
        return self.chat.open_widget(site, origin, remote)

    async def chat_message(self, link: Any, message: dict[str, Any]) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self.chat.widget_message(link, message)
        return result

    def chat_status(self, site: str) -> dict[str, Any]:
        return dict(self.chat.status()) if self.chat is not None else {"agents_available": False}

    async def email_attachment(self, user: WebUser, attachment_id: int) -> tuple[Path, str, str]:
        from callcenter.facade import MessageRefused

        if self.email is None:
            raise MessageRefused("not_found", "no such attachment")
        result: tuple[Path, str, str] = await self.email.attachment_file(user, attachment_id)
        return result

    async def console_message(self, user: WebUser, message: dict[str, Any]) -> dict[str, Any] | None:
        from callcenter.facade import MessageRefused

        try:
            return await self.console.handle(user, message)
        except MessageRefused as e:
            if e.code != "not_found" or self.forward_console is None:
                raise
            result: dict[str, Any] | None = await self.forward_console(user, message, e)
            return result

    async def recording_file(self, user: WebUser, interaction_id: int) -> Path:
        from callcenter.facade import MessageRefused
        from crm_core.errors import NotFound

        try:
            interaction = await self.store.get_interaction(interaction_id)
        except NotFound:
            raise MessageRefused("not_found", "no such recording") from None
        if not set(user.roles) & {"supervisor", "admin"} and not await self._handled(user, interaction):
            raise MessageRefused("forbidden", "only the agent who handled the call or a supervisor")
        base = self.voice.options.recordings_dir
        ref = interaction.recording_ref
        if base is None or not ref:
            raise MessageRefused("not_found", "no such recording")
        path = (base / ref).resolve()
        if not path.is_relative_to(base.resolve()) or not path.is_file():
            raise MessageRefused("not_found", "no such recording")
        return path

    async def _handled(self, user: WebUser, interaction: Any) -> bool:
        """The agent on the interaction, or one who answered it and transferred it on."""
        if interaction.agent_id == user.id:
            return True
        return any(e.kind == "transfer" and (e.data or {}).get("by") == user.username
                   for e in await self.store.timeline(interaction.id))

    async def close(self) -> None:
        self.runner.close()
        await self.interventions.close()
        if self.chat is not None:
            await self.chat.close()
        await self.console.close()
        await self.voice.close()


async def queue_configs(store: CrmStore) -> dict[str, QueueConfig]:
    """The routing queues from the catalog (the database is the authority)."""
    out: dict[str, QueueConfig] = {}
    policies = await store.queue_policies()  # strategy, escalation, ... set by an admin (issue 14)
    for q in await list_queues(store.db):
        if not q.active:
            continue
        out[q.name] = QueueConfig(q.name, skills=dict(q.skills or {}),
                                  service_level=ServiceLevel(q.sl_target_pct / 100, float(q.sl_target_s)))
        if q.name in policies:
            from routing.config import parse_queue

            try:
                out[q.name] = parse_queue({"name": q.name, "skills": dict(q.skills or {}),
                                           "service_level": {"fraction": q.sl_target_pct / 100,
                                                             "seconds": q.sl_target_s}, **policies[q.name]})
            except Exception:  # noqa: BLE001 - checked when stored; a bad policy must not stop routing
                log.exception("queue %s: ignoring its stored policy", q.name)
    return out


async def recorded_queues(store: CrmStore) -> frozenset[str]:
    """The queues whose policy is to record every answered call (`queues.record`)."""
    return frozenset(q.name for q in await list_queues(store.db) if q.active and q.record)


def recordings_dir(settings: Any) -> Path:
    """`voice.recordings_dir`, made absolute (relative to the working directory) and created."""
    path = Path(settings.voice.recordings_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
