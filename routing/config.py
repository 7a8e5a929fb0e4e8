"""Queue and engine configuration from plain data (parsed YAML/JSON), validated.

    queues:
      - name: billing
        skills: {billing: 5}
        strategy: most-skilled            # longest-idle | most-skilled | least-occupied | round-robin
        service_level: {fraction: 0.8, seconds: 20}
        max_wait: 900
        on_timeout: voicemail
        priority: 0
        sticky_s: 30
        escalation:
          - {after: 60, widen_skills: {lower_by: 2, alternatives: [{general: 3}]}}
          - {after: 120, raise_priority: 30}
          - {after: 180, overflow: general}
          - {after: 240, offer_callback: true}
          - {after: 300, alert_supervisor: "billing queue waiting 5 min"}
          - {after: 600, send_to: voicemail}
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing.errors import ConfigError
from routing.model import (
    AlertSupervisor,
    Channel,
    EngineConfig,
    EscalationStep,
    MixingRules,
    OfferCallbackStep,
    Overflow,
    PriorityConfig,
    QueueConfig,
    RaisePriority,
    SendTo,
    ServiceLevel,
    Strategy,
    Tier,
    WidenSkills,
)


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{what}: expected a number, got {v!r}")
    return float(v)


def _skills(v: Any, what: str) -> dict[str, int]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{what}: expected a mapping of skill: level")
    return {str(k): lvl for k, lvl in v.items()}


def parse_step(data: Any, where: str) -> EscalationStep:
    if not isinstance(data, Mapping) or "after" not in data:
        raise ConfigError(f"{where}: a step is a mapping with 'after' and one action")
    after = _num(data["after"], f"{where}.after")
    actions = [k for k in data if k != "after"]
    if len(actions) != 1:
        raise ConfigError(f"{where}: exactly one action per step, got {actions}")
    kind, arg = actions[0], data[actions[0]]
    if kind == "widen_skills":
        arg = arg or {}
        alts = tuple(_skills(a, f"{where}.alternatives") for a in arg.get("alternatives", ()))
        lower = arg.get("lower_by", 0)
        if not isinstance(lower, int):
            raise ConfigError(f"{where}.lower_by: expected an integer")
        return WidenSkills(after, lower, alts)
    if kind == "raise_priority":
        return RaisePriority(after, _num(arg, f"{where}.raise_priority"))
    if kind == "overflow":
        return Overflow(after, str(arg))
    if kind == "offer_callback":
        return OfferCallbackStep(after)
    if kind == "alert_supervisor":
        return AlertSupervisor(after, str(arg) if isinstance(arg, str) else "contact waiting too long")
    if kind == "send_to":
        return SendTo(after, str(arg))
    raise ConfigError(f"{where}: unknown action {kind!r}")


def parse_queue(data: Any) -> QueueConfig:
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError("a queue is a mapping with a 'name'")
    name = str(data["name"])
    known = {"name", "skills", "strategy", "service_level", "max_wait", "on_timeout", "priority",
             "escalation", "sticky_s", "teams"}
    extra = set(data) - known
    if extra:
        raise ConfigError(f"queue {name}: unknown keys {sorted(extra)}")
    try:
        strategy = Strategy(data.get("strategy", Strategy.LONGEST_IDLE.value))
    except ValueError:
        raise ConfigError(f"queue {name}: unknown strategy {data.get('strategy')!r}") from None
    sl = data.get("service_level") or {}
    steps = tuple(parse_step(s, f"queue {name} escalation[{i}]")
                  for i, s in enumerate(data.get("escalation") or ()))
    teams = data.get("teams")
    max_wait = data.get("max_wait")
    return QueueConfig(
        name=name,
        skills=_skills(data.get("skills"), f"queue {name}.skills"),
        strategy=strategy,
        service_level=ServiceLevel(_num(sl.get("fraction", 0.8), f"queue {name}.service_level"),
                                   _num(sl.get("seconds", 20), f"queue {name}.service_level")),
        max_wait=None if max_wait is None else _num(max_wait, f"queue {name}.max_wait"),
        on_timeout=str(data.get("on_timeout", "voicemail")),
        priority=_num(data.get("priority", 0), f"queue {name}.priority"),
        escalation=steps,
        sticky_s=_num(data.get("sticky_s", 0), f"queue {name}.sticky_s"),
        teams=None if teams is None else frozenset(str(t) for t in teams),
    )


def parse_engine_config(data: Mapping[str, Any]) -> EngineConfig:
    """``{queues: [...], mixing: {capacity: {...}, blocked_by: {...}}, priority: {...}, ...}``"""
    queues = {q.name: q for q in (parse_queue(d) for d in data.get("queues") or ())}
    kwargs: dict[str, Any] = {}
    mixing = data.get("mixing")
    if mixing:
        try:
            cap = {Channel(k): int(v) for k, v in (mixing.get("capacity") or {}).items()}
            blocked = {Channel(k): frozenset(Channel(x) for x in v)
                       for k, v in (mixing.get("blocked_by") or {}).items()}
        except ValueError as e:
            raise ConfigError(f"mixing: {e}") from None
        base = MixingRules()
        kwargs["mixing"] = MixingRules(
            capacity={**base.capacity, **cap}, blocked_by={**base.blocked_by, **blocked},
            max_total=mixing.get("max_total"),
        )
    prio = data.get("priority")
    if prio:
        try:
            weights = {Tier(k): _num(v, f"priority.{k}") for k, v in (prio.get("tier_weights") or {}).items()}
        except ValueError as e:
            raise ConfigError(f"priority: {e}") from None
        base_p = PriorityConfig()
        kwargs["priority"] = PriorityConfig({**base_p.tier_weights, **weights},
                                            _num(prio.get("aging_k", 1.0), "priority.aging_k"))
    for key in ("ring_timeout_s", "retry_same_agent_s"):
        if key in data:
            kwargs[key] = _num(data[key], key)
    for key in ("not_ready_on_no_answer", "not_ready_on_decline"):
        if key in data:
            kwargs[key] = bool(data[key])
    if "wrap_up_s" in data:
        kwargs["wrap_up_s"] = {Channel(k): _num(v, f"wrap_up_s.{k}") for k, v in data["wrap_up_s"].items()}
    return EngineConfig(queues=queues, **kwargs)
