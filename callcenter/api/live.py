"""Admin changes take effect at once: the running center reloads its queues and agents."""
from __future__ import annotations

import logging
from typing import Any

from callcenter.services.center import queue_configs
from routing import AgentProfile, Channel

log = logging.getLogger(__name__)


async def reload_queues(center: Any) -> None:
    """Swap the routing engine's queues and the voice service's queue skills for the catalog's."""
    queues = await queue_configs(center.store)
    if not queues:
        return
    live = center.engine.config.queues
    if isinstance(live, dict):
        for name in [n for n in live if n not in queues]:
            if name != center.voice.options.default_queue:  # contacts may still wait there
                live.pop(name, None)
        live.update(queues)
    skills = center.voice.options.queue_skills
    if isinstance(skills, dict):
        skills.update({n: dict(q.skills) for n, q in queues.items()})


async def reload_agent(center: Any, user_id: int) -> str:
    """Bring one user's routing profile up to date: 'added', 'updated' (a signed-in agent keeps
    their presence and gets the new skills and capacities at once), 'removed', 'deferred' (the
    agent holds a contact: the profile applies when it ends; or a signed-in agent lost the role)
    or 'unchanged'."""
    from callcenter.services.agents import Agent

    u = await center.store.get_user(user_id)
    key = str(user_id)
    known = center.directory.agents.get(key)
    wanted = "agent" in (u.roles or []) and not u.disabled
    caps = {Channel.VOICE: u.capacity_voice, Channel.CHAT: u.capacity_chat, Channel.EMAIL: u.capacity_email}
    teams = tuple(t.name for t in u.teams)
    profile = AgentProfile(key, dict(u.skill_map), team=teams[0] if teams else None, capacity=caps)
    if known is not None:
        rec = center.engine.store.agent(key)
        if rec is not None and getattr(rec.presence, "value", "offline") != "offline":
            if not wanted:
                log.info("agent %s is signed in: removal applies when offline", u.username)
                return "deferred"
            # signed in: the new skills and capacities apply now, or once their contact ends
            if await center.runner.replace_agent(profile):
                return "updated"
            log.info("agent %s holds a contact: the profile change applies when it ends", u.username)
            return "deferred"
        try:
            center.engine.remove_agent(key)
        except Exception:  # noqa: BLE001 - still holds contacts
            return "deferred"
        center.directory.agents.pop(key, None)
        if not wanted:
            return "removed"
    elif not wanted:
        return "unchanged"
    await center.runner.add_agent(profile)
    center.directory.add(Agent(u.id, u.username, u.display_name, u.extension, teams), profile)
    return "updated" if known is not None else "added"


def check_flow(center: Any, text: str, name: str) -> tuple[Any, list[Any]]:
    """Run the flow checker with the lookups this center provides: (flow or None, issues)."""
    from ivr.loader import check_text

    return check_text(text, f"{name}.yaml", functions=list(center._lookups()))


async def apply_active_flow(center: Any, name: str) -> bool:
    """Put the stored active version of flow `name` live, if there is one (new calls use it)."""
    from ivr import Engine as FlowEngine

    try:
        v = await center.store.flow_version(name)
    except Exception:  # noqa: BLE001 - an old schema: keep the flow from the file
        log.warning("could not read stored IVR flows (run `callcenter db upgrade`)", exc_info=True)
        return False
    if v is None:
        return False
    flow, issues = check_flow(center, v.text, name)
    if flow is None:
        log.error("stored IVR flow %s@%s no longer passes the checker; keeping the current flow",
                  name, v.version)
        return False
    center.voice.flow = FlowEngine(flow, schedules=getattr(center.voice.flow, "schedules", None))
    log.info("IVR flow %s version %s is live", name, v.version)
    return True


SYSTEM_REASONS = ("no-answer", "disconnected")  # set by the center itself, always valid


async def reload_reason_codes(center: Any) -> None:
    """The not-ready reasons agents may pick: the stored active ones (plus the center's own), or
    the built-in list when none are stored."""
    from callcenter.services.agents import REASON_CODES

    try:
        stored = await center.store.list_reason_codes()
    except Exception:  # noqa: BLE001 - an old schema: keep the built-in list
        log.warning("could not read reason codes (run `callcenter db upgrade`)", exc_info=True)
        return
    if not stored:
        center.console.reason_codes = list(REASON_CODES)
        return
    codes = [(r.code, r.label) for r in stored if r.active]
    builtin = dict(REASON_CODES)
    codes += [(c, builtin[c]) for c in SYSTEM_REASONS if c not in {x for x, _ in codes}]
    center.console.reason_codes = codes


async def load_admin_state(center: Any, flow_name: str) -> None:
    """At start: what admins stored (the active IVR flow, the reason codes)."""
    await apply_active_flow(center, flow_name)
    await reload_reason_codes(center)
    from callcenter.api.hours import reload_hours

    await reload_hours(center)  # business hours and holidays (callcenter/api/hours.py)
