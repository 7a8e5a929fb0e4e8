"""Skill-based routing and escalation: pure, no I/O. See docs/routing.md.

    engine = Engine(EngineConfig(queues={...}))           # InMemoryStore by default
    engine.add_agent(AgentProfile("a1", {"billing": 7}), now)
    decisions = engine.handle(AgentPresence("a1", Presence.READY), now)
    decisions = engine.handle(ContactArrived(Contact("c1", Channel.VOICE, "billing", now)), now)
    decisions = engine.tick(now)                           # when now >= engine.next_due()
"""
from routing.engine import CONTACT_TRANSITIONS, PRESENCE_REQUESTS, STRATEGIES, Bucket, Engine
from routing.errors import BadInput, ConfigError, Misuse, RoutingError, StaleEvent
from routing.events import (
    AgentPresence,
    Alert,
    CallbackAccepted,
    ContactArrived,
    ContactFinished,
    ContactHungUp,
    ContactMoved,
    Decision,
    Ended,
    Escalate,
    Event,
    Offer,
    OfferAccepted,
    OfferCallback,
    OfferDeclined,
    PresenceChanged,
    PriorityRaised,
    Requeue,
    ScorePart,
    TimeOut,
    Timer,
    TimerKind,
    WrapUpEnded,
)
from routing.model import (
    CHANNELS,
    DEFAULT_MIXING,
    AgentProfile,
    AlertSupervisor,
    Channel,
    Contact,
    ContactStatus,
    EngineConfig,
    EscalationStep,
    MixingRules,
    OfferCallbackStep,
    Overflow,
    Presence,
    PriorityConfig,
    QueueConfig,
    RaisePriority,
    Requirement,
    SendTo,
    ServiceLevel,
    SlotState,
    Strategy,
    Tier,
    WidenSkills,
    can_take,
)
from routing.store import AgentRecord, ContactRecord, InMemoryStore, RoutingStore

__all__ = [
    "CHANNELS", "CONTACT_TRANSITIONS", "DEFAULT_MIXING", "PRESENCE_REQUESTS", "STRATEGIES",
    "AgentPresence", "AgentProfile", "AgentRecord", "Alert", "AlertSupervisor", "BadInput", "Bucket",
    "CallbackAccepted", "Channel", "ConfigError", "Contact", "ContactArrived", "ContactFinished",
    "ContactHungUp", "ContactMoved", "ContactRecord", "ContactStatus", "Decision", "Ended", "Engine",
    "EngineConfig",
    "Escalate", "EscalationStep", "Event", "InMemoryStore", "Misuse", "MixingRules", "Offer",
    "OfferAccepted", "OfferCallback", "OfferCallbackStep", "OfferDeclined", "Overflow", "Presence",
    "PresenceChanged", "PriorityConfig", "PriorityRaised", "QueueConfig", "RaisePriority", "Requeue",
    "Requirement",
    "RoutingError", "RoutingStore", "ScorePart", "SendTo", "ServiceLevel", "SlotState", "StaleEvent",
    "Strategy", "Tier", "TimeOut", "Timer", "TimerKind", "WidenSkills", "WrapUpEnded", "can_take",
]
