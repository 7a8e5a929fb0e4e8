"""ConfBridge(name) for the simulator.

No capture has ConfBridge, so the events follow Asterisk 22's AMI event documentation
(ConfbridgeStart/Join/Leave/End: ``Conference`` then the bridge snapshot, Join/Leave add the
channel snapshot and ``Admin``, Join also ``Muted``) and app_confbridge.c's order: the first user
creates the bridge (BridgeCreate, type ``base``, technology ``softmix``, creator ``ConfBridge``,
named after the conference) and ConfbridgeStart; each user gets ConfbridgeJoin, then BridgeEnter;
on leaving BridgeLeave, then ConfbridgeLeave; the last one out gives ConfbridgeEnd, then
BridgeDestroy.  User profile options come from ``Set(CONFBRIDGE(user,marked)=yes)`` and
``Set(CONFBRIDGE(user,end_marked)=yes)``: when the last marked user leaves, end_marked users
are kicked and continue in the dialplan.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callcenter.asterisk.simulator.pbx import Bridge, Channel, Pbx


@dataclass
class Conference:
    name: str
    bridge: Bridge
    users: list[Channel] = field(default_factory=list)
    marked: set[str] = field(default_factory=set)  # uniqueids
    end_marked: set[str] = field(default_factory=set)
    kicks: dict[str, asyncio.Event] = field(default_factory=dict)


def _option(ch: Channel, name: str) -> bool:
    return ch.vars.get(f"CONFBRIDGE(user,{name})", "").lower() in ("yes", "1", "true", "on")


def _user_fields(conf: Conference, ch: Channel) -> list[tuple[str, str]]:
    return [("Conference", conf.name), *conf.bridge.fields(), *ch.snap()]


async def run(pbx: Pbx, ch: Channel, name: str) -> None:
    if not ch.up:
        pbx.answer(ch)
    conf = pbx.conferences.get(name)
    if conf is None:
        br = pbx.create_bridge("base", "softmix", creator="ConfBridge", name=name)
        conf = Conference(name, br)
        pbx.conferences[name] = conf
        pbx.emit("ConfbridgeStart", [("Conference", name), *br.fields()])
    kick = asyncio.Event()
    conf.kicks[ch.uniqueid] = kick
    if _option(ch, "marked"):
        conf.marked.add(ch.uniqueid)
    if _option(ch, "end_marked"):
        conf.end_marked.add(ch.uniqueid)
    conf.users.append(ch)
    pbx.emit("ConfbridgeJoin", [*_user_fields(conf, ch), ("Admin", "No"), ("Muted", "No")])
    pbx.enter_bridge(conf.bridge, ch)
    try:
        await pbx.wait(ch, until=kick)
    finally:
        _leave(pbx, conf, ch)


def kick(pbx: Pbx, name: str, channel: str) -> str | None:
    """ConfbridgeKick: None when kicked, else the error text."""
    conf = pbx.conferences.get(name)
    if conf is None:
        return "No Conference by that name found."
    for ch in conf.users:
        if ch.name == channel or channel == "all":
            conf.kicks[ch.uniqueid].set()
            if channel != "all":
                return None
    return None if channel == "all" and conf.users else "No Channel by that name found in Conference."


def _leave(pbx: Pbx, conf: Conference, ch: Channel) -> None:
    if ch not in conf.users:
        return
    if ch.bridge is conf.bridge:  # the conference keeps its bridge until it ends
        conf.bridge.channels.remove(ch)
        ch.bridge = None
        pbx.emit("BridgeLeave", [*conf.bridge.fields(), *ch.snap()])
        ch.bridge_left.set()
    conf.users.remove(ch)
    conf.kicks.pop(ch.uniqueid, None)
    pbx.emit("ConfbridgeLeave", [*_user_fields(conf, ch), ("Admin", "No")])
    was_marked = ch.uniqueid in conf.marked
    conf.marked.discard(ch.uniqueid)
    conf.end_marked.discard(ch.uniqueid)
    if was_marked and not conf.marked:
        for user in conf.users:
            if user.uniqueid in conf.end_marked:
                conf.kicks[user.uniqueid].set()
    if not conf.users:
        pbx.conferences.pop(conf.name, None)
        pbx.emit("ConfbridgeEnd", [("Conference", conf.name), *conf.bridge.fields()])
        if conf.bridge.uniqueid in pbx.bridges:
            del pbx.bridges[conf.bridge.uniqueid]
            pbx.emit("BridgeDestroy", conf.bridge.fields())
