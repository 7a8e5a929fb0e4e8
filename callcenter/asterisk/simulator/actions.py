# ruff: noqa: E501
"""The AMI actions the simulator answers, with Asterisk 22's responses and error texts."""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from callcenter.asterisk.ami import Action, Event, encode_message, make_event, make_response
from callcenter.asterisk.simulator import atxfer as atxfer_mod
from callcenter.asterisk.simulator.pbx import ChannelGone, Redirected

if TYPE_CHECKING:
    from callcenter.asterisk.simulator.ami_server import AMIServer, Reply, Session
    from callcenter.asterisk.simulator.pbx import Channel, Pbx

Handler = Callable[["Session", Action, "Reply"], Awaitable[None]]


def _ok(aid: str | None, message: str | None = None, **kw: str) -> object:
    fields: list[tuple[str, str]] = []
    if message is not None:
        fields.append(("Message", message))
    fields.extend(kw.items())
    return make_response("Success", fields, action_id=aid)


def _err(aid: str | None, message: str) -> object:
    return make_response("Error", action_id=aid, Message=message)


def _parse_callerid(value: str) -> tuple[str, str]:
    value = value.strip()
    if "<" in value and value.endswith(">"):
        name, _, num = value[:-1].partition("<")
        return num.strip(), name.strip().strip('"')
    return value, ""


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def handlers(server: AMIServer) -> dict[str, Handler]:
    pbx: Pbx = server.pbx
    clock = pbx.clock

    def send_list(session: Session, items: list[Event], complete: str, aid: str | None,
                  **extra: str) -> None:
        for ev in items:
            session.write(ev)
        fields: list[tuple[str, str]] = [("EventList", "Complete"), ("ListItems", str(len(items)))]
        fields.extend(extra.items())
        session.write(make_event(complete, [("ActionID", aid or ""), *fields]))

    async def login(s: Session, a: Action, reply: Reply) -> None:
        if not server.check_secret(s, a):
            await clock.sleep(server.auth_delay)
            reply(_err(a.action_id, "Authentication failed"))  # type: ignore[arg-type]
            s.close()
            return
        s.user = a.get("Username")
        events = (a.get("Events") or "on").lower()
        s.mask = None if events == "off" else ({"all"} if events in ("on", "yes", "all") else
                                                {c.strip() for c in events.split(",")})
        reply(_ok(a.action_id, "Authentication accepted"))  # type: ignore[arg-type]
        up = int(clock.wall() - pbx.started)
        s.deliver(make_event("FullyBooted", [("Privilege", "system,all"), ("Uptime", str(up)),
                                             ("LastReload", str(up)), ("Status", "Fully Booted")]))
        s.deliver(s.security_event("SuccessfulAuth", [
            ("AccountID", s.user or ""), ("SessionID", s.session_id), ("LocalAddress", s.local),
            ("RemoteAddress", s.remote), ("UsingPassword", "0"),
            ("SessionTV", s.security_event("x", []).get("EventTV") or "")]))

    async def challenge(s: Session, a: Action, reply: Reply) -> None:
        s.challenge = f"{secrets.randbelow(10**9):09d}"
        reply(make_response("Success", action_id=a.action_id, Challenge=s.challenge))

    async def logoff(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Goodbye", action_id=a.action_id, Message="Thanks for all the fish."))
        await s.writer.drain()
        s.close()

    async def ping(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Success", action_id=a.action_id, Ping="Pong", Timestamp=f"{clock.wall():.6f}"))

    async def events(s: Session, a: Action, reply: Reply) -> None:
        mask = (a.get("EventMask") or "").strip().lower()
        if mask in ("off", "no", "false", "none", "0"):
            s.mask = None
            reply(make_response("Success", action_id=a.action_id, Events="Off"))
            return
        s.mask = {"all"} if mask in ("on", "yes", "true", "all", "1") else {c.strip() for c in mask.split(",")}
        reply(make_response("Success", action_id=a.action_id, Events="On"))

    async def userevent(s: Session, a: Action, reply: Reply) -> None:
        reply(_ok(a.action_id, "Event Sent"))  # type: ignore[arg-type]
        fields = [("Privilege", "user,all"), ("UserEvent", a.get("UserEvent") or "")]
        if a.action_id is not None:
            fields.append(("ActionID", a.action_id))
        fields.extend((k, v) for k, v in a.headers if k not in ("Action", "ActionID", "UserEvent"))
        pbx.emit("UserEvent", fields[1:], privilege="user,all")

    async def status(s: Session, a: Action, reply: Reply) -> None:
        name = a.get("Channel")
        chans = list(pbx.channels.values())
        if name:
            ch = pbx.find_channel(name)
            if ch is None:
                reply(_err(a.action_id, "No such channel"))  # type: ignore[arg-type]
                return
            chans = [ch]
        reply(make_response("Success", [("EventList", "start"), ("Message", "Channel status will follow")],
                            action_id=a.action_id))
        items = []
        for ch in reversed(chans):
            items.append(make_event("Status", [
                ("Privilege", "Call"), *ch.snap(), ("Type", ch.name.split("/")[0]), ("DNID", ""),
                ("EffectiveConnectedLineNum", ch.con_num), ("EffectiveConnectedLineName", ch.con_name),
                ("TimeToHangup", "0"), ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
                ("Application", ch.app), ("Data", ch.appdata), ("Nativeformats", "(slin)"),
                ("Readformat", "slin"), ("Readtrans", ""), ("Writeformat", "slin"), ("Writetrans", ""),
                ("Callgroup", "0"), ("Pickupgroup", "0"), ("Seconds", str(int(clock.now() - ch.created)))],
                action_id=a.action_id))
        send_list(s, items, "StatusComplete", a.action_id, Items=str(len(items)))

    async def coreshowchannels(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Success", [("EventList", "start"), ("Message", "Channels will follow")],
                            action_id=a.action_id))
        items = []
        for ch in pbx.channels.values():
            items.append(make_event("CoreShowChannel", [
                ("ActionID", a.action_id or ""), *ch.snap(), ("Application", ch.app),
                ("ApplicationData", ch.appdata), ("Duration", _duration(clock.now() - ch.created)),
                ("BridgeId", ch.bridge.uniqueid if ch.bridge else "")]))
        send_list(s, items, "CoreShowChannelsComplete", a.action_id)

    async def command(s: Session, a: Action, reply: Reply) -> None:
        cmd = (a.get("Command") or "").strip()
        if cmd == "core show version":
            reply(make_response("Success", action_id=a.action_id, Message="Command output follows",
                                Output=VERSION_LINE))
            return
        if cmd in ("core stop now", "core stop gracefully", "core restart now"):
            await server.shutdown(exclude=s)
            return
        if cmd == "core show channels":
            reply(make_response("Success", action_id=a.action_id, Message="Command output follows",
                                Output=[f"{len(pbx.channels)} active channels"]))
            return
        first = " ".join(cmd.split()[:2])
        reply(make_response("Error", action_id=a.action_id, Message="Command output follows", Output=(
            f"No such command '{cmd}' (type 'core show help {first}' for other possible commands)")))

    async def setvar(s: Session, a: Action, reply: Reply) -> None:
        var = a.get("Variable") or ""
        value = a.get("Value") or ""
        if var.upper().startswith("DEVICE_STATE(") and var.endswith(")"):
            dev = var[len("DEVICE_STATE("):-1]
            reply(_ok(a.action_id, "Variable Set"))  # type: ignore[arg-type]
            pbx.custom_states[dev] = value.upper()
            pbx.update_device(dev)
            return
        chname = a.get("Channel")
        if chname:
            ch = pbx.find_channel(chname)
            if ch is None:
                reply(_err(a.action_id, "Channel not found"))  # type: ignore[arg-type]
                return
            reply(_ok(a.action_id, "Variable Set"))  # type: ignore[arg-type]
            pbx.set_var(ch, var, value)
            return
        reply(_ok(a.action_id, "Variable Set"))  # type: ignore[arg-type]
        pbx.globals[var] = value

    async def getvar(s: Session, a: Action, reply: Reply) -> None:
        var = a.get("Variable") or ""
        ch = pbx.find_channel(a.get("Channel") or "") if a.get("Channel") else None
        if a.get("Channel") and ch is None:
            reply(_err(a.action_id, "No such channel"))  # type: ignore[arg-type]
            return
        value = pbx.lookup(ch)(var) if ch is not None else pbx.globals.get(var, "")
        reply(make_response("Success", action_id=a.action_id, Variable=var, Value=value))

    async def hangup(s: Session, a: Action, reply: Reply) -> None:
        ch = pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            reply(_err(a.action_id, "No such channel"))  # type: ignore[arg-type]
            return
        cause = int(a.get("Cause") or 16)
        reply(_ok(a.action_id, "Channel Hungup"))  # type: ignore[arg-type]
        if (ch.pbx_task is None or ch.pbx_task.done()) and not ch.atxfer:
            pbx.chan_event("HangupRequest", ch, ("Cause", str(cause)))
        ch.cause = cause
        pbx.request_hangup(ch, cause)

    # ---- Originate --------------------------------------------------------------------------

    async def originate(s: Session, a: Action, reply: Reply) -> None:
        aid = a.action_id
        target = a.get("Channel") or ""
        app = a.get("Application")
        context, exten = a.get("Context") or "default", a.get("Exten") or "s"
        priority = int(a.get("Priority") or 1)
        if app is None and not pbx.dialplan.exists(context, exten, priority):
            reply(_err(aid, "Extension does not exist."))  # type: ignore[arg-type]
            return
        is_async = (a.get("Async") or "").lower() in ("true", "yes", "1")
        cid_num, cid_name = _parse_callerid(a.get("CallerID") or "")
        timeout = int(a.get("Timeout") or 30000) / 1000
        variables = [v.partition("=") for v in a.get_all("Variable")]
        if is_async:
            reply(_ok(aid, "Originate successfully queued"))  # type: ignore[arg-type]
            pbx.spawn(_originate(aid, target, app, a.get("Data") or "", context, exten, priority,
                                 cid_num, cid_name, timeout, variables, True))
            return
        ok = await _originate(aid, target, app, a.get("Data") or "", context, exten, priority, cid_num, cid_name,
                              timeout, variables, False)
        if ok:
            reply(_ok(aid, "Originate successfully queued"))  # type: ignore[arg-type]
        else:
            reply(_err(aid, "Originate failed"))  # type: ignore[arg-type]

    async def _originate(aid: str | None, target: str, app: str | None, data: str, context: str, exten: str,
                         priority: int, cid_num: str, cid_name: str, timeout: float,
                         variables: list[tuple[str, str, str]], report: bool) -> bool:
        def response(ok: bool, reason: int, ch: Channel | None) -> None:
            if not report:
                return
            fields: list[tuple[str, str]] = [("ActionID", aid or ""), ("Response", "Success" if ok else "Failure"),
                                             ("Channel", ch.name if ch is not None and ok else target)]
            fields += [("Application", app), ("Data", data)] if app else [("Context", context), ("Exten", exten)]
            fields += [("Reason", str(reason)), ("Uniqueid", ch.uniqueid if ch is not None and ok else "<unknown>"),
                       ("CallerIDNum", cid_num if ok and cid_num else "<unknown>"),
                       ("CallerIDName", cid_name if ok and cid_name else "<unknown>")]
            pbx.emit("OriginateResponse", fields)

        tech = target.split("/", 1)[0]
        if tech not in ("Local", "PJSIP", "SIP", "IAX2", "DAHDI") or (tech == "SIP"):
            await asyncio.sleep(0)
            response(False, 0, None)
            return False
        if tech == "Local":
            body = target.split("/", 1)[1]
            lexten, _, lctx = body.partition("@")
            if lctx.split("/")[0] not in pbx.dialplan.contexts:
                await asyncio.sleep(0)
                # ami-originate-errors: AppDial2 on ;1, ;2 hangs up (no HangupRequest for ;1),
                # then the OriginateResponse, then ;1
                one, two = pbx.new_local(target)
                pbx.newexten(one, "AppDial2", "(Outgoing Line)")
                one.peer_told = True
                pbx.hangup(two, 0)
                response(False, 0, None)
                pbx.hangup(one, 0)
                return False
            one, two = pbx.new_local(target)
            leg, half2 = one, two
            pbx.newexten(one, "AppDial2", "(Outgoing Line)")
            if cid_num or cid_name:
                for ch in (one, two):
                    pbx.set_callerid(ch, cid_num, cid_name)
                    pbx.set_connected(ch, cid_num, cid_name)
            pbx.local_bridge(one, two)
            for k, _, v in variables:
                pbx.set_var(one, k, v)
                pbx.set_var(two, k, v)
        else:
            leg = pbx.new_simple(target, state=0, context=context, exten=exten)
            leg.behaviour = pbx.behaviour_for(target)
            half2 = None
            if cid_num or cid_name:
                pbx.set_callerid(leg, cid_num, cid_name)
                pbx.set_connected(leg, cid_num, cid_name)
        dialstring = target.split("/", 1)[1]
        pbx.emit("DialBegin", [*leg.snap("Dest"), ("DialString", dialstring)])
        pbx._start_callee(leg, half2)
        deadline = clock.now() + timeout
        while not leg.up and not leg.hungup and clock.now() < deadline:
            waiter = asyncio.ensure_future(leg.answered.wait())
            await asyncio.wait([waiter, asyncio.ensure_future(clock.sleep(min(0.2, deadline - clock.now())))],
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        if leg.state == 5 and not leg.up:
            pass
        if not leg.up:
            status = "NOANSWER" if not leg.hungup else "BUSY" if leg.cause == 17 else "CHANUNAVAIL"
            if status != "NOANSWER":  # a timed-out Originate has no DialEnd (ami-originate-errors)
                pbx.emit("DialEnd", [*leg.snap("Dest"), ("DialStatus", status)])
            response(False, 3 if status == "NOANSWER" else 5 if status == "BUSY" else 0, None)
            if not leg.hungup:
                pbx.hangup(leg, 0)
            return False
        pbx.emit("DialEnd", [*leg.snap("Dest"), ("DialStatus", "ANSWER")])
        response(True, 4, leg)
        leg.dial_peer = None
        if app:
            leg.context, leg.exten = leg.context, leg.exten
            pbx.spawn(_run_application(leg, app, data))
        else:
            pbx.start_pbx(leg, context, exten, priority)
        return True

    async def _run_application(ch: Channel, app: str, data: str) -> None:
        ch.pbx_task = asyncio.current_task()  # type: ignore[assignment]
        # an Originate with Application runs the application without a PBX: no Newexten, and
        # when it ends (or its other half hangs up) only a Hangup (ami-agi-edge, ami-chanspy-*)
        ch.app, ch.appdata = app, data
        try:
            await pbx.run_app(ch, app, data)
        except (ChannelGone, Redirected):
            pass
        finally:
            if not ch.hungup:
                pbx.hangup(ch, ch.cause if ch.hangup_requested else 16)

    async def playdtmf(s: Session, a: Action, reply: Reply) -> None:
        """PlayDTMF (app_senddtmf). With `Receive: yes` the digit is queued as if the channel's own
        phone pressed it: a ChanSpy run with the `d` option switches mode on 4, 5 or 6."""
        ch = pbx.find_channel(a.get("Channel") or "")
        if ch is None or ch.hungup:
            reply(_err(a.action_id, "Channel not found"))  # type: ignore[arg-type]
            return
        digit = (a.get("Digit") or "")[:1]
        if not digit:
            reply(_err(a.action_id, "No digit specified"))  # type: ignore[arg-type]
            return
        if (a.get("Receive") or "").lower() in ("yes", "true", "1", "on"):
            pbx.chan_event("DTMFEnd", ch, ("Digit", digit), ("DurationMs", a.get("Duration") or "100"),
                           ("Direction", "Received"), privilege="dtmf,all")
            pbx.spy_digit(ch, digit)
        else:
            pbx.chan_event("DTMFBegin", ch, ("Digit", digit), ("Direction", "Sent"), privilege="dtmf,all")
            pbx.chan_event("DTMFEnd", ch, ("Digit", digit), ("DurationMs", a.get("Duration") or "100"),
                           ("Direction", "Sent"), privilege="dtmf,all")
        reply(_ok(a.action_id, "DTMF successfully queued"))  # type: ignore[arg-type]

    # ---- transfers, bridge, hold -------------------------------------------------------------

    def redirect_channel(ch: Channel, context: str, exten: str, priority: int) -> None:
        if ch.pbx_task is not None and not ch.pbx_task.done():
            # the async goto publishes the new location at once, with the application still
            # running (Newexten with the old app); the first step there then gives no Newexten
            # (ami-transfer-blind 74-80, ami-transfer-redirect)
            ch.context, ch.exten, ch.priority = context, exten, priority
            pbx.newexten(ch, ch.app, ch.appdata)
            ch.goto_reported = True
            if ch.interrupt is None or ch.interrupt.done():
                ch.interrupt = asyncio.get_running_loop().create_future()
            ch.interrupt.set_result(Redirected(context, exten, priority))
            return
        ch.dial_peer = None
        pbx.start_pbx(ch, context, exten, priority)
        pbx.leave_bridge(ch)

    async def redirect(s: Session, a: Action, reply: Reply) -> None:
        ch = pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            reply(_err(a.action_id, "Channel specified does not exist"))  # type: ignore[arg-type]
            return
        ctx, ex = a.get("Context") or ch.context, a.get("Exten") or ch.exten
        prio = int(a.get("Priority") or 1)
        if not pbx.dialplan.exists(ctx, ex, prio):
            reply(_err(a.action_id, "Extension does not exist."))  # type: ignore[arg-type]
            return
        extra = pbx.find_channel(a.get("ExtraChannel") or "") if a.get("ExtraChannel") else None
        reply(_ok(a.action_id, "Dual Redirect successful" if extra else "Redirect successful"))  # type: ignore[arg-type]
        if extra is not None:
            redirect_channel(extra, a.get("ExtraContext") or ctx, a.get("ExtraExten") or ex,
                             int(a.get("ExtraPriority") or prio))
        redirect_channel(ch, ctx, ex, prio)

    async def blindtransfer(s: Session, a: Action, reply: Reply) -> None:
        ch = pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            reply(_err(a.action_id, "No such channel"))  # type: ignore[arg-type]
            return
        br = ch.bridge
        others = [c for c in br.channels if c is not ch] if br else []
        if not others or br is None:
            reply(_err(a.action_id, "Transfer failed"))  # type: ignore[arg-type]
            return
        ctx, ex = a.get("Context") or ch.context, a.get("Exten") or ""
        reply(_ok(a.action_id, "Transfer succeeded"))  # type: ignore[arg-type]
        transferee = others[0]
        pbx.chan_event("Unhold", ch)  # the transferer's bridge is taken off hold first (ami-transfer-blind)
        pbx.emit("BlindTransfer", [("Result", "Success"), *ch.snap("Transferer"), *transferee.snap("Transferee"),
                                   *br.fields(), ("IsExternal", "Yes"), ("Context", ctx), ("Extension", ex)])
        redirect_channel(transferee, ctx, ex, 1)
        pbx.request_hangup(ch, 16)

    async def atxfer(s: Session, a: Action, reply: Reply) -> None:
        name, exten, context = a.get("Channel") or "", a.get("Exten") or "", a.get("Context") or ""
        if not name:
            reply(_err(a.action_id, "No channel specified"))  # type: ignore[arg-type]
            return
        if not exten:
            reply(_err(a.action_id, "No extension specified"))  # type: ignore[arg-type]
            return
        ch = pbx.find_channel(name)
        if ch is None:
            reply(_err(a.action_id, "Channel specified does not exist"))  # type: ignore[arg-type]
            return
        reply(_ok(a.action_id, "Atxfer successfully queued"))  # type: ignore[arg-type]
        if context:
            pbx.set_var(ch, "TRANSFER_CONTEXT", context)
        pbx.spawn(atxfer_mod.run(pbx, ch, context or ch.vars.get("TRANSFER_CONTEXT") or ch.context, exten))

    async def confbridgekick(s: Session, a: Action, reply: Reply) -> None:
        from callcenter.asterisk.simulator import confbridge

        conf, chan = a.get("Conference") or "", a.get("Channel") or ""
        if not conf or not chan:
            reply(_err(a.action_id, "No Conference name provided." if not conf else "No channel name provided."))  # type: ignore[arg-type]
            return
        error = confbridge.kick(pbx, conf, chan)
        reply(_err(a.action_id, error) if error else _ok(a.action_id, "User kicked"))  # type: ignore[arg-type]

    async def bridge(s: Session, a: Action, reply: Reply) -> None:
        n1, n2 = a.get("Channel1") or "", a.get("Channel2") or ""
        c1, c2 = pbx.find_channel(n1), pbx.find_channel(n2)
        if c1 is None:
            reply(_err(a.action_id, f"Channel1 does not exist: {n1}"))  # type: ignore[arg-type]
            return
        if c2 is None:
            reply(_err(a.action_id, f"Channel2 does not exist: {n2}"))  # type: ignore[arg-type]
            return
        reply(_ok(a.action_id, "Channels have been bridged"))  # type: ignore[arg-type]
        br = pbx.create_bridge()
        for ch in (c1, c2):
            pbx.moh_stop(ch)
            if ch.bridge is not None:
                old = ch.bridge
                old.channels.remove(ch)
                ch.bridge = None
                pbx.emit("BridgeLeave", [*old.fields(), *ch.snap()])
                if not old.channels:
                    pbx.bridges.pop(old.uniqueid, None)
                    pbx.emit("BridgeDestroy", old.fields())
            if ch.pbx_task is not None and not ch.pbx_task.done():
                from callcenter.asterisk.simulator.pbx import BridgedAway
                if ch.interrupt is None or ch.interrupt.done():
                    ch.interrupt = asyncio.get_running_loop().create_future()
                ch.interrupt.set_result(BridgedAway())
            pbx.enter_bridge(br, ch)

    async def mixmonitor(s: Session, a: Action, reply: Reply) -> None:
        ch = pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            reply(_err(a.action_id, "No such channel"))  # type: ignore[arg-type]
            return
        reply(make_response("Success", action_id=a.action_id))
        ch.recording = a.get("File") or f"{ch.uniqueid}.wav"
        pbx.write_placeholder(ch.recording)
        pbx.chan_event("MixMonitorStart", ch)

    async def stopmixmonitor(s: Session, a: Action, reply: Reply) -> None:
        ch = pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            reply(_err(a.action_id, "No such channel"))  # type: ignore[arg-type]
            return
        if ch.recording is None:
            reply(_err(a.action_id, "Could not stop monitoring channel"))  # type: ignore[arg-type]
            return
        reply(make_response("Success", action_id=a.action_id))
        ch.recording = None
        pbx.chan_event("MixMonitorStop", ch)

    async def park(s: Session, a: Action, reply: Reply) -> None:
        name = a.get("Channel") or ""
        ch = pbx.find_channel(name)
        if ch is None:
            reply(_err(a.action_id, f"Channel does not exist: {name}"))  # type: ignore[arg-type]
            return
        timeout = int(a.get("Timeout") or 45000) // 1000
        space = next(i for i in range(701, 721) if i not in pbx.parked)
        # res_parking's success message ends with a stray LF, so the bytes are
        # ``Message: Park successful\n\r\n\r\n`` (protocol fact 13)
        s.write_raw(encode_message(make_response("Success", action_id=a.action_id, Message="Park successful"))
                    .replace(b"Message: Park successful\r\n", b"Message: Park successful\n\r\n"))
        pbx.parked[space] = (ch, clock.now(), timeout)
        parker = pbx.find_channel(a.get("TimeoutChannel") or "") if a.get("TimeoutChannel") else None
        old = ch.bridge

        def lot() -> object:
            if pbx.parking_bridge is None or pbx.parking_bridge.uniqueid not in pbx.bridges:
                pbx.parking_bridge = pbx.create_bridge("parking", "holding_bridge")
            return pbx.parking_bridge

        def parked_event() -> None:
            pbx.emit("ParkedCall", [*ch.snap("Parkee"), *pbx._park_tail(space, pbx.parked[space])])

        if parker is not None:
            # bridged park (fact 14): the lot's bridge, BridgeLeave, BridgeEnter, MOH, then
            # ParkedCall; the parker stays in the old bridge until the call is retrieved
            pbx.move_to_bridge(ch, lot())  # type: ignore[arg-type]
            pbx.moh_start(ch, "default")
            parked_event()
            if old is not None:
                pbx.park_origin[space] = old
            return
        # unbridged park: ParkedCall first, then the move; the peer left alone hangs up
        parked_event()
        pbx.move_to_bridge(ch, lot())  # type: ignore[arg-type]
        if old is not None and len(old.channels) == 1:
            rest = old.channels[0]
            pbx.leave_bridge(rest)
            pbx._after_bridge(rest)
        pbx.moh_start(ch, "default")

    async def parkedcalls(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Success", [("EventList", "start"), ("Message", "Parked calls will follow")],
                            action_id=a.action_id))
        items = [make_event("ParkedCall", [*ch.snap("Parkee"), *pbx._park_tail(sp, it)], action_id=a.action_id)
                 for sp, it in sorted(pbx.parked.items()) for ch in [it[0]]]
        send_list(s, items, "ParkedCallsComplete", a.action_id, Total=str(len(items)))

    async def parkinglots(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Success", [("EventList", "start"), ("Message", "Parking lots will follow")],
                            action_id=a.action_id))
        items = [make_event("Parkinglot", [("ActionID", a.action_id or ""), ("Name", "default"),
                                           ("StartSpace", "701"), ("StopSpace", "720"), ("Timeout", "45")])]
        send_list(s, items, "ParkinglotsComplete", a.action_id)

    # ---- queues ------------------------------------------------------------------------------

    async def queueadd(s: Session, a: Action, reply: Reply) -> None:
        err = pbx.queue_add(a.get("Queue") or "", a.get("Interface") or "", a.get("MemberName") or "",
                            int(a.get("Penalty") or 0), (a.get("Paused") or "").lower() in ("true", "yes", "1"),
                            a.get("StateInterface") or "", a.get("Reason") or "")
        reply(_err(a.action_id, err) if err else _ok(a.action_id, "Added interface to queue"))  # type: ignore[arg-type]

    async def queueremove(s: Session, a: Action, reply: Reply) -> None:
        err = pbx.queue_remove(a.get("Queue") or "", a.get("Interface") or "")
        reply(_err(a.action_id, err) if err else  # type: ignore[arg-type]
               _ok(a.action_id, "Removed interface from queue"))

    async def queuepause(s: Session, a: Action, reply: Reply) -> None:
        paused = (a.get("Paused") or "").lower() in ("true", "yes", "1")
        iface = a.get("Interface") or ""
        err = pbx.queue_pause(a.get("Queue"), iface, paused, a.get("Reason") or "")
        if err:
            reply(_err(a.action_id, err))  # type: ignore[arg-type]
            return
        reply(_ok(a.action_id, "Interface paused successfully" if paused  # type: ignore[arg-type]
                  else "Interface unpaused successfully"))

    async def queuestatus(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Success", [("EventList", "start"), ("Message", "Queue status will follow")],
                            action_id=a.action_id))
        want = a.get("Queue")
        items: list[Event] = []
        for q in pbx.queues.values():
            if want and q.name != want:
                continue
            items.append(make_event("QueueParams", [
                ("Queue", q.name), ("Max", "0"), ("Strategy", q.strategy), ("Calls", str(len(q.entries))),
                ("Holdtime", str(q.holdtime)), ("TalkTime", str(q.talktime)), ("Completed", str(q.completed)),
                ("Abandoned", str(q.abandoned)), ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0"),
                ("ServicelevelPerf2", "0.0"), ("Weight", "0")], action_id=a.action_id))
            for m in reversed(list(q.members.values())):
                items.append(make_event("QueueMember", [
                    ("Queue", q.name), ("Name", m.name), ("Location", m.interface),
                    ("StateInterface", m.state_interface), ("Membership", "dynamic" if m.dynamic else "static"),
                    ("Penalty", str(m.penalty)), ("CallsTaken", str(m.calls)), ("LastCall", str(m.last_call)),
                    ("LastPause", str(m.last_pause)), ("LoginTime", str(m.login_time)),
                    ("InCall", "1" if m.in_call else "0"), ("Status", str(pbx.member_status(m))),
                    ("Paused", "1" if m.paused else "0"), ("PausedReason", m.reason),
                    ("Wrapuptime", str(q.wrapuptime))], action_id=a.action_id))
            for e in q.entries:
                ch = e.channel
                items.append(make_event("QueueEntry", [
                    ("Queue", q.name), ("Position", str(e.position)), ("Channel", ch.name),
                    ("Uniqueid", ch.uniqueid), ("CallerIDNum", ch.cid_num), ("CallerIDName", ch.cid_name),
                    ("ConnectedLineNum", ch.con_num), ("ConnectedLineName", ch.con_name),
                    ("Wait", str(int(clock.now() - e.joined))), ("Priority", "0")], action_id=a.action_id))
        send_list(s, items, "QueueStatusComplete", a.action_id)

    async def queuesummary(s: Session, a: Action, reply: Reply) -> None:
        reply(make_response("Success", [("EventList", "start"), ("Message", "Queue summary will follow")],
                            action_id=a.action_id))
        want = a.get("Queue")
        items = []
        for q in pbx.queues.values():
            if want and q.name != want:
                continue
            avail = len([m for m in q.members.values() if not m.paused
                         and pbx.device_state(m.state_interface) in ("NOT_INUSE", "UNKNOWN")])
            longest = max((int(clock.now() - e.joined) for e in q.entries), default=0)
            items.append(make_event("QueueSummary", [
                ("Queue", q.name), ("LoggedIn", str(len(q.members))), ("Available", str(avail)),
                ("Callers", str(len(q.entries))), ("HoldTime", str(q.holdtime)), ("TalkTime", str(q.talktime)),
                ("LongestHoldTime", str(longest))], action_id=a.action_id))
        send_list(s, items, "QueueSummaryComplete", a.action_id)

    table: dict[str, Handler] = {
        "login": login, "challenge": challenge, "logoff": logoff, "ping": ping, "events": events,
        "userevent": userevent, "status": status, "coreshowchannels": coreshowchannels, "command": command,
        "setvar": setvar, "getvar": getvar, "hangup": hangup, "originate": originate, "redirect": redirect,
        "blindtransfer": blindtransfer, "atxfer": atxfer, "confbridgekick": confbridgekick, "bridge": bridge, "mixmonitor": mixmonitor,
        "stopmixmonitor": stopmixmonitor, "park": park, "parkedcalls": parkedcalls, "parkinglots": parkinglots,
        "queueadd": queueadd, "queueremove": queueremove, "queuepause": queuepause,
        "queuestatus": queuestatus, "queuesummary": queuesummary, "playdtmf": playdtmf,
    }
    return table


VERSION_LINE = "Asterisk 22.10.1 built by callcenter-simulator on a x86_64 running Linux"
