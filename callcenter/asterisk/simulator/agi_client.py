# ruff: noqa: E501
"""The simulator's FastAGI client: what Asterisk's ``AGI(agi://host:port/script)`` does.

One new TCP connection per AGI() call, the ``agi_*`` environment, then each command is executed
against the model (AGIExecStart / AGIExecEnd on AMI) and answered.  AGISTATUS: ``SUCCESS`` when
the server closes the socket, ``FAILURE`` when it cannot be reached or sends a ``FAILURE`` line,
``HANGUP`` when the channel hung up.  A caller's DTMF (its Behaviour digits) answers GET DATA /
WAIT FOR DIGIT / STREAM FILE; when the caller hangs up mid-command the command gets
``200 result=-1``, then the unsolicited ``HANGUP`` line, then 511 for live-only commands.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from callcenter.asterisk.agi import (
    AgiCommand,
    AgiReply,
    AgiResult,
    AsteriskConnection,
    Closed,
    DeadChannel,
    InvalidCommand,
    NeedData,
    ScriptFailure,
    UnknownCommand,
    UsageError,
)

if TYPE_CHECKING:
    from callcenter.asterisk.simulator.pbx import Channel, Pbx

log = logging.getLogger(__name__)

# The usage text Asterisk 22 prints in a 520 block: the command's <description> from res_agi's XML
# documentation, markup left as it is (protocol fact 12).  A command with bad arguments but no
# entry here gets the single-line ``520 Invalid command syntax.  Proper usage not available.``
USAGE: dict[str, tuple[str, ...]] = {
    "GET DATA": (
        "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
        "Returns the digits received from the channel at the other end."),
    "SAY NUMBER": (
        "Say a given number, returning early if any of the given DTMF digits are received on the channel.  "
        "Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical "
        "value of the digit if one was pressed or <literal>-1</literal> on error/hangup.",),
    "STREAM FILE": (
        "Send the given file, allowing playback to be interrupted by the given digits, if any. Returns "
        "<literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value "
        "of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was disconnected. "
        "If musiconhold is playing before calling stream file it will be automatically stopped and will not be "
        "restarted after completion.",
        "It sets the following channel variables upon completion:",
        "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.",
        "    <value>SUCCESS</value>",
        "    <value>FAILED</value>"),
    "SET VARIABLE": ("Sets a variable to the current channel.",),
    "WAIT FOR DIGIT": (
        "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF digit. Returns "
        "<literal>-1</literal> on channel failure, <literal>0</literal> if no digit is received in the timeout, "
        "or the numerical value of the ascii of the digit if one is received. Use <literal>-1</literal> for the "
        "<replaceable>timeout</replaceable> value if you desire the call to block indefinitely.",),
    "DATABASE GET": (
        "Retrieves an entry in the Asterisk database for a given <replaceable>family</replaceable> and "
        "<replaceable>key</replaceable>.",
        "Returns <literal>0</literal> if <replaceable>key</replaceable> is not set. Returns <literal>1</literal> "
        "if <replaceable>key</replaceable> is set and returns the variable in parenthesis.",
        "Example return code: 200 result=1 (testvariable)"),
    "GET VARIABLE": (
        "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns "
        "<literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in "
        "parentheses.",
        "Example return code: 200 result=1 (testvariable)"),
}


def _is_int(text: str) -> bool:
    t = text.strip()
    return t.lstrip("+-").isdigit()


def bad_arguments(name: str, a: tuple[str, ...]) -> bool:
    """res_agi's argument checks (``argc`` there counts the command's words too)."""
    n = len(a)
    if name == "GET DATA":
        return n < 1
    if name == "SAY NUMBER":
        return n < 2 or n > 3 or not _is_int(a[0])
    if name in ("SAY DIGITS", "SAY ALPHA", "SAY PHONETIC"):
        return n != 2
    if name == "STREAM FILE":
        return n < 2 or n > 3
    if name == "SET VARIABLE":
        return n != 2
    if name == "WAIT FOR DIGIT":
        return n != 1 or not _is_int(a[0])
    if name in ("DATABASE GET", "DATABASE DEL"):
        return n != 2
    if name == "DATABASE PUT":
        return n != 3
    if name in ("GET VARIABLE", "GET FULL VARIABLE"):
        return n < 1 or (name == "GET VARIABLE" and n != 1)
    if name == "EXEC":
        return n < 1
    return False


def usage_error(name: str) -> UsageError:
    lines = USAGE.get(name)
    if lines is None:
        return UsageError(text="Invalid command syntax.  Proper usage not available.", usage=(), end="",
                          multiline=False)
    return UsageError(usage=lines)


KNOWN_APPS = {"playback", "background", "wait", "noop", "answer", "set", "musiconhold", "queue", "dial",
              "hangup", "senddtmf", "verbose", "playtones", "progress", "ringing", "goto", "saydigits"}


class AgiRun:
    def __init__(self, pbx: Pbx, ch: Channel) -> None:
        self.pbx = pbx
        self.ch = ch
        self.conn = AsteriskConnection()
        self.writer: asyncio.StreamWriter | None = None
        self.dead = False
        self.digit_event = asyncio.Event()
        self.hangup_event = asyncio.Event()

    # called by the model
    def channel_hungup(self) -> None:
        self.dead = True
        self.hangup_event.set()
        self.digit_event.set()

    def digit_arrived(self) -> None:
        self.digit_event.set()

    def _write(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    async def _pause(self, seconds: float) -> bool:
        """Sleep virtual seconds; True if the channel hung up meanwhile."""
        if self.dead:
            return True
        sleeper = asyncio.ensure_future(self.pbx.clock.sleep(seconds))
        hang = asyncio.ensure_future(self.hangup_event.wait())
        await asyncio.wait([sleeper, hang], return_when=asyncio.FIRST_COMPLETED)
        sleeper.cancel()
        hang.cancel()
        return self.dead

    async def _press(self, maxdigits: int, timeout: float) -> tuple[str, bool]:
        """Digits the caller presses for one prompt (from its Behaviour), or a timeout."""
        ch = self.ch
        peer = self._dtmf_source()
        b = peer.behaviour if peer is not None else None
        if not ch.digits and b is not None and b.digits:
            script = b.digits.pop(0)
            for d in script:
                if await self._pause(b.dtmf_delay):
                    return "", True
                self.pbx.dtmf(ch, d)
                if d == "#":
                    break
        out = ""
        end = self.pbx.clock.now() + timeout
        while len(out) < maxdigits:
            if ch.digits:
                d = ch.digits.popleft()
                if d == "#":
                    break
                out += d
                continue
            if self.dead:
                return out, True
            remaining = end - self.pbx.clock.now()
            if remaining <= 0:
                return out, False
            self.digit_event.clear()
            sleeper = asyncio.ensure_future(self.pbx.clock.sleep(remaining))
            dig = asyncio.ensure_future(self.digit_event.wait())
            await asyncio.wait([sleeper, dig], return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            dig.cancel()
        return out, False

    def _dtmf_source(self) -> Channel | None:
        ch = self.ch
        if ch.behaviour is not None:
            return ch
        if ch.other is not None and ch.other.behaviour is not None:
            return ch.other
        return None

    async def execute(self, cmd: AgiCommand) -> AgiReply:
        name = " ".join(cmd.name.upper().split())
        a = cmd.args
        pbx, ch = self.pbx, self.ch
        if self.dead and not cmd.runs_dead:
            return DeadChannel()
        if bad_arguments(name, a):
            return usage_error(name)
        if name == "ANSWER":
            pbx.answer(ch)
            return AgiResult("0")
        if name == "NOOP":
            return AgiResult("0")
        if name == "VERBOSE":
            return AgiResult("1")
        if name == "GET VARIABLE":
            value = pbx.lookup(ch)(a[0]) if a else ""
            return AgiResult("1", value) if value != "" else AgiResult("0")
        if name == "GET FULL VARIABLE":
            return AgiResult("1", pbx.sub(ch, a[0])) if a else AgiResult("0")
        if name == "SET VARIABLE":
            if len(a) >= 2:
                pbx.set_var(ch, a[0], a[1])
            return AgiResult("1")
        if name == "CHANNEL STATUS":
            return AgiResult(str(ch.state if not ch.up else 6))
        if name in ("SET CONTEXT", "SET EXTENSION", "SET PRIORITY", "SET CALLERID", "SET MUSIC",
                    "SET AUTOHANGUP"):
            if name == "SET MUSIC" and a:
                if a[0].lower() == "on":
                    pbx.moh_start(ch, a[1] if len(a) > 1 else "default")
                else:
                    pbx.moh_stop(ch)
            return AgiResult("0" if name != "SET CONTEXT" else "0")
        if name == "HANGUP":
            pbx.request_hangup(ch, 16)
            return AgiResult("1")
        if name in ("STREAM FILE", "CONTROL STREAM FILE"):
            escape = a[1] if len(a) > 1 else ""
            if escape and (ch.digits or (self._dtmf_source() and self._dtmf_source().behaviour.digits)):  # type: ignore[union-attr]
                digits, dead = await self._press(1, 1.0)
                if dead:
                    return AgiResult("-1", extra=(("endpos", "0"),))
                if digits:
                    return AgiResult(str(ord(digits[0])), extra=(("endpos", "4000"),))
            if await self._pause(1.0):
                return AgiResult("-1", extra=(("endpos", "0"),))
            return AgiResult("0", extra=(("endpos", "8000"),))
        if name == "GET DATA":
            timeout = float(a[1]) / 1000 if len(a) > 1 and a[1].lstrip("-").isdigit() and int(a[1]) > 0 else 5.0
            maxd = int(a[2]) if len(a) > 2 and a[2].isdigit() else 1024
            if await self._pause(0.5):
                return AgiResult("-1")
            digits, dead = await self._press(maxd, timeout)
            if dead:
                return AgiResult("-1")
            if len(digits) >= maxd or (digits and not dead):
                return AgiResult(digits)
            return AgiResult(digits, "timeout")
        if name == "WAIT FOR DIGIT":
            t = int(a[0]) if a and a[0].lstrip("-").isdigit() else -1
            digits, dead = await self._press(1, t / 1000 if t > 0 else 3600.0)
            if dead:
                return AgiResult("-1")
            return AgiResult(str(ord(digits[0])) if digits else "0")
        if name in ("SAY NUMBER", "SAY DIGITS", "SAY ALPHA", "SAY PHONETIC", "SAY DATE", "SAY TIME"):
            if await self._pause(0.5):
                return AgiResult("-1")
            return AgiResult("0")
        if name == "EXEC":
            app = a[0] if a else ""
            if app.lower() not in KNOWN_APPS:
                return AgiResult("-2")
            if self.dead:
                return AgiResult("0")  # the application returns at once on a dead channel (agi-edge)
            data = a[1] if len(a) > 1 else ""
            try:
                await pbx.run_app(ch, app, data)
            except Exception:
                return AgiResult("-1")
            return AgiResult("0")
        if name.startswith("DATABASE"):
            return AgiResult("0")
        return InvalidCommand()

    async def run(self, url: str, args: list[str]) -> str:
        pbx, ch = self.pbx, self.ch
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 4573
        script = parts.path.lstrip("/") + (("?" + parts.query) if parts.query else "")
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            return "FAILURE"
        self.writer = writer
        ch.agi = self
        env = [
            ("agi_network", "yes"), ("agi_network_script", script), ("agi_request", url),
            ("agi_channel", ch.name), ("agi_language", ch.language), ("agi_type", ch.name.split("/")[0]),
            ("agi_uniqueid", ch.uniqueid), ("agi_version", "22.10.1"),
            ("agi_callerid", ch.cid_num if ch.cid_num != "<unknown>" else "unknown"),
            ("agi_calleridname", ch.cid_name if ch.cid_name != "<unknown>" else "unknown"),
            ("agi_callingpres", "0"), ("agi_callingani2", "0"), ("agi_callington", "0"),
            ("agi_callingtns", "0"), ("agi_dnid", "unknown"), ("agi_rdnis", "unknown"),
            ("agi_context", ch.context), ("agi_extension", ch.exten), ("agi_priority", str(ch.priority)),
            ("agi_enhanced", "0.0"), ("agi_accountcode", ""), ("agi_threadid", str(id(self) % 10**15)),
        ]
        env.extend((f"agi_arg_{i}", v) for i, v in enumerate(args, 1))
        status = "SUCCESS"
        try:
            writer.write(self.conn.send_env(env))
            hangup_sent = False
            while True:
                if self.dead and not hangup_sent:
                    hangup_sent = True
                    self._write(self.conn.send_hangup())
                ev = self.conn.next_event()
                if isinstance(ev, NeedData):
                    read = asyncio.ensure_future(reader.read(65536))
                    hang = asyncio.ensure_future(self.hangup_event.wait())
                    await asyncio.wait([read, hang], return_when=asyncio.FIRST_COMPLETED)
                    hang.cancel()
                    if not read.done():
                        if not hangup_sent:
                            hangup_sent = True
                            self._write(self.conn.send_hangup())
                        data = await read
                    else:
                        data = read.result()
                    self.conn.receive_data(data)
                    continue
                if isinstance(ev, Closed):
                    break
                if isinstance(ev, ScriptFailure):
                    status = "FAILURE"
                    break
                if isinstance(ev, UnknownCommand):
                    self._write(self.conn.send_reply(InvalidCommand()))
                    continue
                line = cmd_line(ev)
                cid = str(pbx.rng.randrange(10**8, 2 * 10**9))
                if not ch.hungup:
                    pbx.chan_event("AGIExecStart", ch, ("CommandId", cid), ("Command", line), privilege="agi,all")
                reply = await self.execute(ev)
                if not ch.hungup:
                    code, result = agi_result_fields(reply)
                    pbx.chan_event("AGIExecEnd", ch, ("CommandId", cid), ("Command", line),
                                   ("ResultCode", code), ("Result", result), privilege="agi,all")
                self._write(self.conn.send_reply(reply))
                if self.dead and not hangup_sent:
                    hangup_sent = True
                    self._write(self.conn.send_hangup())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except Exception:
            log.exception("simulated AGI failed")
            status = "FAILURE"
        finally:
            ch.agi = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self.dead:
            return "HANGUP"
        return status


def cmd_line(cmd: AgiCommand) -> str:
    from callcenter.asterisk.agi import encode_command
    try:
        return encode_command(cmd).decode().rstrip("\n")
    except Exception:
        return " ".join([cmd.name, *cmd.args])


def agi_result_fields(reply: AgiReply) -> tuple[str, str]:
    if isinstance(reply, AgiResult):
        if reply.result == "-1":
            return "-1", "Failure"
        if reply.result == "-2":
            return "200", "Unknown Result"  # res_agi's default branch (EXEC of an unknown application)
        return "200", "Success"
    if isinstance(reply, DeadChannel):
        return "511", reply.text
    if isinstance(reply, InvalidCommand):
        return "510", "Invalid or unknown command"
    return str(reply.code), "Usage"


async def run_agi(pbx: Pbx, ch: Channel, url: str, args: list[str]) -> str:
    return await AgiRun(pbx, ch).run(url, args)
