"""Helpers shared by the AGI tests: reading the Asterisk captures, and a fake Asterisk over TCP.

(No tests here; the name only keeps the file among the AGI test files.)
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.asterisk.agi import (
    AgiCommand,
    AgiReply,
    AsteriskConnection,
    Closed,
    NeedData,
    ScriptFailure,
    UnknownCommand,
)
from tests.captures import CAPTURES  # noqa: E402

AGI_CAPTURES = ["fastagi-session", "agi-edge", "agi-badarg", "agi-dial-return", "agi-survey"]


@dataclass
class CapturedSession:
    env: list[tuple[str, str]]
    sent: list[str] = field(default_factory=list)  # '>>> ' lines: commands from the server
    received: list[str] = field(default_factory=list)  # '<<< ' lines after the environment


def read_capture(name: str) -> list[CapturedSession]:
    """Parse an agi-*.txt / fastagi-session.txt capture into sessions."""
    sessions: list[CapturedSession] = []
    in_env = False
    for raw in (CAPTURES / f"{name}.txt").read_text().split("\n"):
        if raw.startswith("<<< (from Asterisk)"):
            sessions.append(CapturedSession(env=[]))
            in_env = True
            continue
        if not sessions or raw.startswith("#"):
            continue
        cur = sessions[-1]
        if in_env:
            if raw == "":
                in_env = False
                continue
            key, _, value = raw.partition(": ")
            cur.env.append((key, value))
        elif raw.startswith(">>> "):
            cur.sent.append(raw[4:])
        elif raw.startswith("<<< "):
            cur.received.append(raw[4:])
    return sessions


def raw_sessions(name: str) -> list[bytes]:
    """The .raw bytes split per session (each session starts with 'agi_network: yes')."""
    data = (CAPTURES / f"{name}.raw").read_bytes()
    marker = b"agi_network: yes\n"
    parts = data.split(marker)
    assert parts[0] == b""
    return [marker + p for p in parts[1:]]


Responder = Callable[[AgiCommand | UnknownCommand], AgiReply | None]


class FakeAsterisk:
    """Plays Asterisk over real TCP: sends an environment, answers commands with ``respond``.

    ``respond`` returns the reply, or None to leave the command unanswered (e.g. to hang up
    mid-command from the test). Every decoded command is kept in ``commands``.
    """

    def __init__(self, env: list[tuple[str, str]], respond: Responder) -> None:
        self.env = env
        self.respond = respond
        self.conn = AsteriskConnection()
        self.commands: list[AgiCommand | UnknownCommand] = []
        self.failure: ScriptFailure | None = None
        self.closed_by_server = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.command_seen = asyncio.Event()

    async def connect(self, port: int, *, send_env: bool = True) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        if send_env:
            self.writer.write(self.conn.send_env(self.env))

    def send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    def hangup(self) -> None:
        self.send_raw(self.conn.send_hangup())

    def reply(self, reply: AgiReply) -> None:
        self.send_raw(self.conn.send_reply(reply))

    async def next_command(self) -> AgiCommand | UnknownCommand | None:
        """The next command from the server (None when it closed or sent FAILURE)."""
        assert self.reader is not None
        while True:
            ev = self.conn.next_event()
            if isinstance(ev, NeedData):
                data = await self.reader.read(65536)
                self.conn.receive_data(data)
                continue
            if isinstance(ev, Closed):
                self.closed_by_server = True
                return None
            if isinstance(ev, ScriptFailure):
                self.failure = ev
                return None
            self.commands.append(ev)
            self.command_seen.set()
            return ev

    async def serve(self) -> None:
        """Answer every command with ``respond`` until the server closes or sends FAILURE."""
        while True:
            cmd = await self.next_command()
            if cmd is None:
                break
            reply = self.respond(cmd)
            if reply is not None:
                self.reply(reply)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Read until EOF from the server."""
        assert self.reader is not None and self.writer is not None
        while await self.reader.read(65536):
            pass
        self.closed_by_server = True
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def make_env(script: str = "ivr", *, query: str = "", args: tuple[str, ...] = (),
             channel: str = "Local/100@test-00000001;2", port: int = 4573) -> list[tuple[str, str]]:
    """An environment block shaped like the captures (agi-edge.txt)."""
    ns = script + (f"?{query}" if query else "")
    env = [
        ("agi_network", "yes"),
        ("agi_network_script", ns),
        ("agi_request", f"agi://127.0.0.1:{port}/{ns}"),
        ("agi_channel", channel),
        ("agi_language", "en"),
        ("agi_type", "Local"),
        ("agi_uniqueid", "1795589188.61"),
        ("agi_version", "22.10.1"),
        ("agi_callerid", "+14155550199"),
        ("agi_calleridname", "Jack Caller"),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", "unknown"),
        ("agi_rdnis", "unknown"),
        ("agi_context", "agi-edge"),
        ("agi_extension", "args"),
        ("agi_priority", "2"),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", ""),
        ("agi_threadid", "140095872837312"),
    ]
    env += [(f"agi_arg_{i}", a) for i, a in enumerate(args, 1)]
    return env


# --------------------------------------------------------------------------- classic AGI handlers
# Loaded by the subprocess in test_agi_classic.py (python -m callcenter.asterisk.agi_classic
# --handlers tests.callcenter.asterisk.test_agi_support:CLASSIC_HANDLERS).


async def _classic_ivr(session: object) -> None:
    from callcenter.asterisk.fastagi import AgiChannelError, AgiHangupError, AgiSession

    assert isinstance(session, AgiSession)
    r = session.route
    await session.answer()
    cid = await session.get_variable("CALLERID(num)")
    await session.set_variable("ROUTE", f"{r.script}|{r.params.get('lang')}|{','.join(r.args)}|{cid}")
    if r.params.get("mode") == "hangup":
        try:
            await session.wait_for_digit(15000)  # the test sends SIGHUP, then result=-1
        except AgiChannelError:
            pass
        try:
            await session.answer()  # refused here: SIGHUP seen, nothing sent
            await session.set_variable("SAW_HANGUP", "no")
        except AgiHangupError:
            await session.set_variable("SAW_HANGUP", "yes")  # still allowed on a dead channel


async def _classic_crash(session: object) -> None:
    raise RuntimeError("handler bug")


CLASSIC_HANDLERS = {"ivr": _classic_ivr, "crash": _classic_crash}
