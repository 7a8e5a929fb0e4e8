"""Errors of the routing engine.

Like h11, the engine separates two kinds of failure:

* :class:`BadInput` -- the outside world handed the engine something that does not fit: an invalid
  queue configuration, a proficiency of 11, an unknown agent, an event that contradicts the state.
  Its subclass :class:`StaleEvent` marks the harmless races between people and timers (an agent
  accepts an offer that has just timed out): callers log it and carry on. The engine raises these
  *before* changing any state, so the state is the same as before the call.
* :class:`Misuse` -- the caller used the engine wrongly: time going backwards, an object that is not
  an event, a store built with other mixing rules. These are bugs in the caller.
"""
from __future__ import annotations


class RoutingError(Exception):
    """Base class of every error the routing engine raises."""


class BadInput(RoutingError, ValueError):
    """Invalid data or an event that does not fit the current state. State is unchanged."""


class ConfigError(BadInput):
    """Invalid configuration (queues, escalation policies, mixing rules, agent profiles)."""


class StaleEvent(BadInput):
    """The event refers to an offer or contact that is already over (a race); safe to drop."""


class Misuse(RoutingError):
    """The caller used the engine wrongly (a programming error, not bad data)."""
