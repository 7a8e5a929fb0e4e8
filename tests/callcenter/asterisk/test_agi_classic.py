"""Classic AGI: `callcenter agi` runs as Asterisk would start it, stdin/stdout pipes, pyst2 inside."""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from callcenter.asterisk.agi import (
    AgiCommand,
    AgiResult,
    AsteriskConnection,
    Closed,
    NeedData,
    ScriptFailure,
)

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = "tests.callcenter.asterisk.test_agi_support:CLASSIC_HANDLERS"


def classic_env(*args: str) -> list[tuple[str, str]]:
    env = [
        ("agi_request", "/var/lib/asterisk/agi-bin/callcenter-agi"),
        ("agi_channel", "Local/100@inbound-00000001;2"),
        ("agi_language", "en"),
        ("agi_type", "Local"),
        ("agi_uniqueid", "1795547027.3"),
        ("agi_version", "22.10.1"),
        ("agi_callerid", "+14155550100"),
        ("agi_calleridname", "Alice Wong"),
        ("agi_context", "inbound"),
        ("agi_extension", "s"),
        ("agi_priority", "2"),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "139803192092352"),
    ]
    return env + [(f"agi_arg_{i}", a) for i, a in enumerate(args, 1)]


class ClassicCall:
    """Asterisk's side of a classic AGI process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.conn = AsteriskConnection()
        self.commands: list[object] = []

    async def next_event(self) -> object:
        assert self.proc.stdout is not None
        while isinstance(ev := self.conn.next_event(), NeedData):
            self.conn.receive_data(await self.proc.stdout.read(65536))
        self.commands.append(ev)
        return ev

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)


async def start(*args: str) -> ClassicCall:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "agi", "--handlers", HANDLERS, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    call = ClassicCall(proc)
    call.send(call.conn.send_env(classic_env(*args)))
    return call


VARS = {"CALLERID(num)": "+14155550100"}


async def serve(call: ClassicCall, on_wait=None) -> tuple[int, bytes]:
    while True:
        ev = await call.next_event()
        if isinstance(ev, Closed | ScriptFailure):
            break
        assert isinstance(ev, AgiCommand), ev
        if ev.name == "GET VARIABLE":
            reply = AgiResult("1", VARS[ev.args[0]]) if ev.args[0] in VARS else AgiResult("0")
        elif ev.name == "WAIT FOR DIGIT" and on_wait is not None:
            await on_wait()
            reply = AgiResult("-1")
        elif ev.name == "SET VARIABLE":
            VARS[ev.args[0]] = ev.args[1]
            reply = AgiResult("1")
        else:
            reply = AgiResult("0")
        call.send(call.conn.send_reply(reply))
    assert call.proc.stdin is not None and call.proc.stderr is not None
    call.proc.stdin.close()
    err = await call.proc.stderr.read()
    return await call.proc.wait(), err


async def test_classic_call_routes_by_first_arg() -> None:
    call = await start("ivr?lang=en", "first arg", "second")
    status, err = await serve(call)
    assert status == 0, err.decode()
    assert call.commands[0] == AgiCommand("ANSWER")
    assert VARS["ROUTE"] == "ivr|en|first arg,second|+14155550100"
    assert isinstance(call.commands[-1], Closed)


async def test_classic_sighup_marks_the_session_hung_up() -> None:
    call = await start("ivr?mode=hangup")

    async def hang_up() -> None:
        call.proc.send_signal(signal.SIGHUP)  # what Asterisk does when the caller hangs up

    status, err = await serve(call, hang_up)
    assert status == 0, err.decode()
    names = [c.name for c in call.commands if isinstance(c, AgiCommand)]
    assert names == ["ANSWER", "GET VARIABLE", "SET VARIABLE", "WAIT FOR DIGIT", "SET VARIABLE"]
    assert VARS["SAW_HANGUP"] == "yes"  # the second ANSWER never went out


@pytest.mark.parametrize("script", ["nosuch", "crash"])
async def test_classic_unknown_script_or_crash_fails(script: str) -> None:
    call = await start(script)
    status, _ = await serve(call)
    assert status == 1  # non-zero exit: AGISTATUS=FAILURE
    assert isinstance(call.commands[-1], ScriptFailure)
