# ruff: noqa: E501
"""The simulator's AMI server: Asterisk's manager over TCP, on top of the sans-I/O codec.

Responses are written before the events the action causes (protocol fact 2): a handler gets a
``reply`` callable, answers first and only then changes the model.  Events are written to every
logged-in session whose ``Events`` mask accepts the event's privilege classes.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from callcenter.asterisk.ami import (
    Action,
    AMIConnection,
    Banner,
    ConnectionClosed,
    Event,
    NeedData,
    ProtocolError,
    Response,
    Role,
    encode_message,
    make_event,
    make_response,
)

if TYPE_CHECKING:
    from callcenter.asterisk.simulator.pbx import Channel, Pbx

log = logging.getLogger(__name__)

BANNER = "Asterisk Call Manager/11.0.0"
VERSION = "Asterisk 22.10.1 built by callcenter-simulator"
Reply = Callable[[Response], None]


def _fmt_time(t: float) -> str:
    import datetime as dt
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+0000"


class Session:
    def __init__(self, server: AMIServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conn = AMIConnection(Role.SERVER)
        self.user: str | None = None
        self.mask: set[str] | None = {"all"}  # None: events off
        self.challenge: str | None = None
        self.closing = False
        self.session_id = f"0x{secrets.randbits(44):x}"
        self.started = server.pbx.clock.wall()
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        sock = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        self.remote = f"IPV4/TCP/{peer[0]}/{peer[1]}"
        self.local = f"IPV4/TCP/{sock[0]}/{sock[1]}"

    def write(self, msg: Banner | Response | Event) -> None:
        if self.closing or self.writer.is_closing():
            return
        self.writer.write(encode_message(msg))

    def write_raw(self, data: bytes) -> None:
        """Bytes Asterisk sends that the codec would not produce (the Park response's stray LF)."""
        if self.closing or self.writer.is_closing():
            return
        self.writer.write(data)

    def deliver(self, ev: Event) -> None:
        if self.user is None or self.mask is None or self.closing:
            return
        priv = ev.get("Privilege")
        if priv is None:
            return
        classes = {c.strip().lower() for c in priv.split(",")}
        if "all" not in self.mask and not (classes & self.mask):
            return
        self.write(ev)

    def security_event(self, name: str, fields: list[tuple[str, str]]) -> Event:
        pbx = self.server.pbx
        head = [("Privilege", "security,all"), ("EventTV", _fmt_time(pbx.clock.wall())),
                ("Severity", "Error" if name != "SuccessfulAuth" else "Informational"),
                ("Service", "AMI"), ("EventVersion", "1")]
        return make_event(name, [*head, *fields])

    async def run(self) -> None:
        self.write(Banner(BANNER, "11.0.0"))
        try:
            while not self.closing:
                ev = self.conn.next_event()
                if isinstance(ev, NeedData):
                    data = await self.reader.read(65536)
                    self.conn.receive_data(data)
                    continue
                if isinstance(ev, ConnectionClosed):
                    break
                if isinstance(ev, Action):
                    await self.server.handle(self, ev)
                    with contextlib.suppress(ConnectionError):
                        await self.writer.drain()
        except (ConnectionError, ProtocolError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.closing = True
        self.server.sessions.discard(self)
        with contextlib.suppress(Exception):
            self.writer.close()


class AMIServer:
    """``AMIServer(pbx, users={"cc": "secret"})``; ``await start()``; ``port``; ``await close()``."""

    def __init__(self, pbx: Pbx, users: dict[str, str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, *, auth_delay: float = 1.0) -> None:
        self.pbx = pbx
        self.users = users if users is not None else {"cc": "ccsecret"}
        self.host = host
        self._port = port
        self.auth_delay = auth_delay
        self.sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.shutdown_done = asyncio.Event()
        pbx.listeners.append(self._fanout)
        from callcenter.asterisk.simulator import actions
        self.handlers: dict[str, Callable[[Session, Action, Reply], Awaitable[None]]] = actions.handlers(self)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self._port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            s.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(ValueError):
            self.pbx.listeners.remove(self._fanout)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self.sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await session.run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _fanout(self, ev: Event) -> None:
        for s in list(self.sessions):
            s.deliver(ev)

    async def handle(self, session: Session, action: Action) -> None:
        aid = action.action_id

        def reply(resp: Response) -> None:
            session.write(resp)

        name = action.name
        if not name:
            reply(make_response("Error", action_id=aid, Message="Missing action in request"))
            if session.user is not None:
                session.write(session.security_event("RequestBadFormat", self._bad_fields(session, "NONE")))
            return
        low = name.lower()
        if session.user is None and low not in ("login", "challenge"):
            reply(make_response("Error", action_id=aid, Message="Permission denied"))
            return
        handler = self.handlers.get(low)
        if handler is None:
            reply(make_response("Error", action_id=aid, Message=(
                f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands.")))
            session.write(session.security_event("RequestBadFormat", self._bad_fields(session, f"Action: {name}")))
            return
        try:
            await handler(session, action, reply)
        except Exception as exc:  # a bug in a handler must not kill the session
            log.exception("simulated action %s failed", name)
            reply(make_response("Error", action_id=aid, Message=f"Internal error: {exc}"))

    def _bad_fields(self, s: Session, request: str) -> list[tuple[str, str]]:
        return [("SessionID", s.session_id), ("LocalAddress", s.local), ("RemoteAddress", s.remote),
                ("RequestType", request), ("SessionTV", _fmt_time(s.started)), ("AccountID", s.user or "")]

    def check_secret(self, session: Session, action: Action) -> bool:
        user = action.get("Username") or ""
        secret = self.users.get(user)
        if secret is None:
            return False
        if (action.get("AuthType") or "").lower() == "md5":
            if session.challenge is None:
                return False
            want = hashlib.md5((session.challenge + secret).encode()).hexdigest()
            return (action.get("Key") or "").lower() == want
        return action.get("Secret") == secret

    async def shutdown(self, exclude: Session | None = None) -> None:
        """``core stop now``: channels hang up, idle sessions get Shutdown, then EOF for all."""
        # every channel is told first (SoftHangupRequest, Cause 4: shutdown), then each one's
        # application ends and it hangs up with cause 0 (ami-shutdown-cli-with-call 406-475)
        chans = [ch for ch in self.pbx.channels.values() if not ch.hungup]
        for ch in chans:
            self.pbx.chan_event("SoftHangupRequest", ch, ("Cause", "4"))
        for ch in chans:
            ch.cause = 0
            self.pbx.request_hangup(ch, 0)
        for ch in chans:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ch.gone.wait(), 1.0)
            if not ch.hungup:
                self.pbx.hangup(ch, 0)
        ev = make_event("Shutdown", [("Privilege", "system,all"), ("Shutdown", "Cleanly"), ("Restart", "False")])
        for s in list(self.sessions):
            if s is not exclude:
                s.deliver(ev)
        for s in list(self.sessions):
            with contextlib.suppress(Exception):
                await s.writer.drain()
            s.close()
        if self._server is not None:
            self._server.close()
        self.shutdown_done.set()


def channel_or_error(pbx: Pbx, name: str | None) -> Channel | None:
    if not name:
        return None
    return pbx.find_channel(name)
