"""Attended transfer (AMI ``Atxfer``) the way Asterisk 22's bridge_basic.c plays it.

Atxfer queues the feature code (``*2``) and the extension as DTMF on the transferer T.  T puts
the transferee's bridge on hold (``Hold`` on T, MusicOnHoldStart on the transferee), a consult
Local channel C is created and imparted into a new bridge, and T moves into that bridge.  Then:

- C answers (DialEnd with only ``Dest*`` fields): T consults the target;
- T hangs up: MusicOnHoldStop, BridgeMerge of the consult bridge into the original one,
  ``AttendedTransfer`` (Result Success, DestType Bridge), and C's Local channel optimizes away
  (LocalOptimizationBegin/End) so that the target ends up in the original bridge
  (ami-transfer-atxfer.txt);
- the target does not answer (hangs up, busy, or atxfernoanswertimeout): T goes back into the
  original bridge and is unheld (rebridge; no AttendedTransfer event);
- the transferee hangs up while the target is being called: ``AttendedTransfer`` Result Fail;
- the extension does not exist in the transfer context: T is unheld and nothing else happens.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callcenter.asterisk.simulator.pbx import Bridge, Channel, Pbx

FEATURE_CODE = "*2"  # features.conf.used: atxfer => *2
NO_ANSWER_TIMEOUT = 15.0  # features.conf.used: atxfernoanswertimeout = 15


def dtmf_received(pbx: Pbx, ch: Channel, digit: str) -> None:
    """A queued DTMF frame read by the channel: only DTMFEnd, DurationMs 0 (ami-transfer-atxfer)."""
    pbx.chan_event("DTMFEnd", ch, ("Digit", digit), ("DurationMs", "0"), ("Direction", "Received"),
                   privilege="dtmf,all")


def _move(pbx: Pbx, ch: Channel, br: Bridge | None) -> None:
    """Take ``ch`` out of its bridge (BridgeLeave) and into ``br`` (BridgeEnter), without the
    basic bridge's rule that a lone channel leaves too."""
    old = ch.bridge
    if old is not None:
        old.channels.remove(ch)
        ch.bridge = None
        pbx.emit("BridgeLeave", [*old.fields(), *ch.snap()])
    if br is not None:
        br.channels.append(ch)
        ch.bridge = br
        pbx.emit("BridgeEnter", [*br.fields(), *ch.snap()])


def _destroy_if_empty(pbx: Pbx, br: Bridge) -> None:
    if not br.channels and br.uniqueid in pbx.bridges:
        del pbx.bridges[br.uniqueid]
        pbx.emit("BridgeDestroy", br.fields())


async def _settle(n: int = 8) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def run(pbx: Pbx, t: Channel, context: str, exten: str) -> None:
    """Play the queued digits on ``t`` and run the transfer (see the module docstring)."""
    await _settle()
    b1 = t.bridge
    if b1 is None or t.hungup:  # not bridged: the digits are only read, no feature runs
        for d in FEATURE_CODE + exten:
            dtmf_received(pbx, t, d)
        return
    b1.keep_alone = True  # the transfer holds the bridge: a transferee hanging up fails it instead
    try:
        await _transfer(pbx, t, b1, context, exten)
    finally:
        b1.keep_alone = False
        if not b1.channels and b1.uniqueid in pbx.bridges:
            _destroy_if_empty(pbx, b1)


async def _transfer(pbx: Pbx, t: Channel, b1: Bridge, context: str, exten: str) -> None:
    for d in FEATURE_CODE:
        dtmf_received(pbx, t, d)
    transferees = [c for c in b1.channels if c is not t]
    pbx.chan_event("Hold", t)
    for x in transferees:
        pbx.moh_start(x)
    for d in exten:
        dtmf_received(pbx, t, d)
    if not pbx.dialplan.exists(context, exten, 1):  # "Unable to acquire target extension"
        pbx.chan_event("Unhold", t)
        for x in transferees:
            pbx.moh_stop(x)
        return
    c1, c2 = pbx.new_local(f"Local/{exten}@{context}", t.linkedid)
    pbx.set_var(c1, "TRANSFERERNAME", t.name)
    pbx.set_var(c1, "ATTENDEDTRANSFER", t.name)
    b2 = pbx.create_bridge()
    b2.keep_alone = True
    pbx.set_var(c2, "ATTENDEDTRANSFER", t.name)
    pbx.set_var(c2, "TRANSFERERNAME", t.name)
    pbx.set_callerid(c2, t.cid_num, t.cid_name)
    pbx.local_bridge(c1, c2)
    pbx._start_callee(c1, c2)
    await _settle(16)  # the target's dialplan starts dialing before the consult leg is imparted
    if c1.hungup:
        _rebridge(pbx, t, b1, b2, transferees)
        return
    pbx.set_connected(c1, t.cid_num, t.cid_name)
    _move(pbx, c1, b2)
    pbx.set_var(c1, "ATTENDEDTRANSFER", "")
    _move(pbx, t, b2)
    pbx.set_var(c1, "BRIDGEPEER", t.name)
    pbx.set_var(t, "BRIDGEPEER", c1.name)
    pbx.set_connected(t, c1.cid_num, c1.cid_name)
    t.atxfer = True
    x = transferees[0] if transferees else c1
    phase = ["calling"]

    def transferer_hangup() -> None:  # runs inside T's hangup, before its ;2 half is told
        if phase[0] in ("calling", "consulting"):
            answered = phase[0] == "consulting"
            phase[0] = "done"
            _complete(pbx, t, b1, b2, c1, transferees)
            pbx.spawn(_after_complete(pbx, c1, answered))

    t.on_hangup.append(transferer_hangup)
    try:
        outcome = await _wait(pbx, t, c1, x, NO_ANSWER_TIMEOUT, lambda: c1.up)
        if outcome == "answer":
            phase[0] = "consulting"
            pbx.emit("DialEnd", [*c1.snap("Dest"), ("DialStatus", "ANSWER")])
            outcome = await _wait(pbx, t, c1, x, None, lambda: False)
    finally:
        t.atxfer = False
        if transferer_hangup in t.on_hangup:
            t.on_hangup.remove(transferer_hangup)
    if phase[0] == "done":
        return
    was_calling = phase[0] == "calling"
    phase[0] = "done"
    if outcome == "target-gone":
        _rebridge(pbx, t, b1, b2, transferees)
    elif outcome == "transferee-gone":
        # calling: Result Fail is published; consulting: T and the target just go on talking
        b2.keep_alone = False
        if was_calling:
            pbx.emit("AttendedTransfer", [("Result", "Fail"), *t.snap("OrigTransferer"), *b1.fields("Orig"),
                                          *t.snap("SecondTransferer"), *b2.fields("Second"),
                                          ("IsExternal", "No"), ("DestType", "Fail")])
        _destroy_if_empty(pbx, b1)


async def _wait(pbx: Pbx, t: Channel, c1: Channel, x: Channel, timeout: float | None,
                answered: Callable[[], bool]) -> str:
    """Wait for the next stimulus: the target answers, the target hangs up (or the no-answer
    timeout), the transferee hangs up, the transferer hangs up."""
    deadline = None if timeout is None else pbx.clock.now() + timeout
    while True:
        if t.hungup:
            return "complete"
        if answered():
            return "answer"
        if c1.hungup:
            return "target-gone"
        if x.hungup:
            return "transferee-gone"
        remaining = None if deadline is None else deadline - pbx.clock.now()
        if remaining is not None and remaining <= 0:
            return "target-gone"
        tasks = [asyncio.ensure_future(e.wait()) for e in (c1.changed, x.gone, t.gone)]
        if remaining is not None:
            tasks.append(asyncio.ensure_future(pbx.clock.sleep(remaining)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()


async def _after_complete(pbx: Pbx, c1: Channel, answered: bool) -> None:
    """After the merge: a target still ringing (the transferer hung up early) is waited for,
    then the consult Local channel optimizes away."""
    if not answered:
        while not c1.up and not c1.hungup:
            await c1.changed.wait()
        if c1.hungup:
            return
        pbx.emit("DialEnd", [*c1.snap("Dest"), ("DialStatus", "ANSWER")])
    await _optimize(pbx, c1)


def _rebridge(pbx: Pbx, t: Channel, b1: Bridge, b2: Bridge, transferees: list[Channel]) -> None:
    """The target did not answer: T goes back to the transferee and is unheld; the consult
    bridge goes away with the consult channel."""
    if not t.hungup:
        _move(pbx, t, b1)
        pbx.set_var(t, "BRIDGEPEER", transferees[0].name if transferees else "")
        pbx.chan_event("Unhold", t)
    for x in transferees:
        pbx.moh_stop(x)
    b2.keep_alone = False
    for c in list(b2.channels):
        if c is not t:
            pbx.request_hangup(c, 16)
    _destroy_if_empty(pbx, b2)


def _complete(pbx: Pbx, t: Channel, b1: Bridge, b2: Bridge, c1: Channel, transferees: list[Channel]) -> None:
    """Runs inside T's hangup, before its ;2 half is told: merge the consult bridge into the
    original one and publish the transfer (ami-transfer-atxfer.txt 2640-2800)."""
    for x in transferees:
        pbx.moh_stop(x)
    if t.bridge is b2:
        _move(pbx, t, None)
    pbx.emit("BridgeMerge", [*b1.fields("To"), *b2.fields("From")])
    if t.other is not None and not t.other.hungup:
        pbx.chan_event("HangupRequest", t.other, ("Cause", str(t.cause)))
        t.other.peer_told = True
    for c in list(b2.channels):
        _move(pbx, c, b1)
    x = transferees[0] if transferees else c1
    pbx.emit("AttendedTransfer", [("Result", "Success"), *t.snap("OrigTransferer"), *b1.fields("Orig"),
                                  *t.snap("SecondTransferer"), *b2.fields("Second"), *x.snap("Transferee"),
                                  ("IsExternal", "No"), ("DestType", "Bridge"),
                                  ("DestBridgeUniqueid", b1.uniqueid)])
    b2.keep_alone = False
    _destroy_if_empty(pbx, b2)


async def _optimize(pbx: Pbx, c1: Channel) -> None:
    """The consult Local channel C optimizes itself away: the target's leg A1 (bridged with C;2)
    takes C;1's place in the original bridge, then both halves of C hang up."""
    await _settle(16)
    c2 = c1.other
    if c1.hungup or c2 is None or c2.hungup or c1.bridge is None or c2.bridge is None:
        return
    peers = [c for c in c2.bridge.channels if c is not c2]
    if not peers:
        return
    a1, b1, b3 = peers[0], c1.bridge, c2.bridge
    pbx.emit("LocalOptimizationBegin", [*c1.snap("LocalOne"), *c2.snap("LocalTwo"), *a1.snap("Source"),
                                        ("DestUniqueId", c2.uniqueid), ("Id", "0")])
    b3.keep_alone = True
    _move(pbx, a1, None)
    _move(pbx, c1, None)
    _move(pbx, a1, b1)
    a1.dial_peer = None
    pbx.emit("LocalOptimizationEnd", [*c1.snap("LocalOne"), *c2.snap("LocalTwo"), ("Success", "No"),
                                      ("Id", "0")])
    b3.keep_alone = False
    pbx.hangup(c1, 16)
