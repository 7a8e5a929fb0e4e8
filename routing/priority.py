"""Priority and aging.

    key = weight - k * arrival_time        (higher key goes first)
    weight = tier_weight[tier] + queue.priority + contact.priority + escalation boosts

Time passing never changes the order of two waiting contacts: both keys are constant, so a heap
or sorted set stays valid while contacts wait. Aging still holds: a contact that arrived at t is
overtaken only by contacts that arrive before t + (W_max - w) / k, where W_max is the largest
weight any contact can reach. After that instant it only moves forward, so it is served within a
bounded time. See docs/routing.md.
"""
from __future__ import annotations

from routing.model import Contact, PriorityConfig, QueueConfig


def base_weight(contact: Contact, queue: QueueConfig, config: PriorityConfig) -> float:
    return config.tier_weights[contact.tier] + queue.priority + contact.priority


def priority_key(weight: float, arrived_at: float, config: PriorityConfig) -> float:
    return weight - config.aging_k * arrived_at


def overtake_horizon(weight: float, max_weight: float, config: PriorityConfig) -> float:
    """Seconds after its arrival beyond which no newcomer goes ahead of a contact of this weight."""
    return max(0.0, (max_weight - weight) / config.aging_k)
