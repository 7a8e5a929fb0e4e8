"""The FastAGI server (asyncio) and the typed AGI session API that handlers use.

A handler is ``async def handler(session: AgiSession) -> None``; handlers are routed by script
name: ``AGI(agi://host:4573/ivr?lang=en,first arg)`` runs ``handlers["ivr"]`` with
``session.route.params == {"lang": "en"}`` and ``session.route.args == ("first arg",)``.

What Asterisk sees (``AGISTATUS`` after the ``AGI()`` application):

* handler returned: we close the socket -> ``SUCCESS`` and the dialplan continues
  (after a caller hang-up Asterisk itself reports ``HANGUP``);
* too many sessions, unknown script, handler raised, session time limit: we send the line
  ``FAILURE`` (res_agi.c treats a line starting "failure" as the script failing) and close ->
  ``FAILURE``, the same status as when the server is unreachable, so one
  ``GotoIf($["${AGISTATUS}" != "SUCCESS"]?fallback)`` covers every case;
* header timeout (no environment within ``header_timeout``): we close the socket.

The session is transport-agnostic: :class:`AgiSession` is fed bytes (``feed``) and writes with a
callable, so the classic AGI adapter (``agi_classic.py``) runs the very same handlers over
stdin/stdout.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from callcenter.asterisk.agi import (
    AgiCommand,
    AgiConnection,
    AgiEnv,
    AgiReply,
    AgiRequest,
    AgiResult,
    Closed,
    DeadChannel,
    Hangup,
    InvalidCommand,
    NeedData,
    RemoteProtocolError,
    UsageError,
)

__all__ = [
    "AgiApplicationNotFoundError",
    "AgiChannelError",
    "AgiCommandError",
    "AgiConnectionLostError",
    "AgiHandler",
    "AgiHangupError",
    "AgiInvalidCommandError",
    "AgiRoute",
    "AgiSession",
    "AgiUnexpectedReplyError",
    "AgiUsageError",
    "ChannelStatus",
    "DigitsResult",
    "FastAgiServer",
    "PlaybackResult",
    "ServerStats",
]

log = logging.getLogger(__name__)

AgiHandler = Callable[["AgiSession"], Awaitable[None]]


# --------------------------------------------------------------------------- errors


class AgiCommandError(Exception):
    """A command did not succeed. ``reply`` is Asterisk's reply (None if nothing was sent)."""

    def __init__(self, message: str, command: AgiCommand | None = None,
                 reply: AgiReply | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.reply = reply


class AgiInvalidCommandError(AgiCommandError):
    """510: Asterisk does not know the command."""


class AgiUsageError(AgiCommandError):
    """520: bad arguments; ``usage`` is Asterisk's usage text."""

    @property
    def usage(self) -> str:
        return "\n".join(self.reply.usage) if isinstance(self.reply, UsageError) else ""


class AgiUnexpectedReplyError(AgiCommandError):
    """A reply code or result this API does not expect."""


class AgiApplicationNotFoundError(AgiCommandError):
    """EXEC of an application Asterisk does not have (``200 result=-2``)."""


class AgiChannelError(AgiCommandError):
    """``result=-1``: "error or hang-up" (e.g. a missing sound file, or the caller left)."""


class AgiHangupError(AgiChannelError):
    """The channel is gone: a channel command after ``HANGUP`` (refused here, nothing sent),
    or 511 (Command Not Permitted on a dead channel or intercept routine)."""


class AgiConnectionLostError(AgiHangupError):
    """Asterisk closed the connection (or it broke the protocol and we dropped it)."""


# --------------------------------------------------------------------------- results


class ChannelStatus(enum.IntEnum):
    """CHANNEL STATUS results."""

    DOWN_AVAILABLE = 0
    DOWN_RESERVED = 1
    OFF_HOOK = 2
    DIGITS_DIALED = 3
    RINGING = 4
    REMOTE_RINGING = 5
    UP = 6
    BUSY = 7


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    """STREAM FILE / GET OPTION: the escape digit pressed (None if none) and the end position."""

    digit: str | None
    endpos: int | None


@dataclass(frozen=True, slots=True)
class DigitsResult:
    """GET DATA: the digits read and whether it ended on the timeout."""

    digits: str
    timed_out: bool


@dataclass(frozen=True, slots=True)
class AgiRoute:
    """Which handler runs, with what: ``script`` name, URL ``query`` and positional ``args``."""

    script: str
    query: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    @classmethod
    def from_env(cls, env: AgiEnv) -> AgiRoute:
        """FastAGI: from the URL. Classic AGI: the first argument is ``script[?query]``."""
        if env.network or not env.args:
            return cls(env.request.script, env.request.query, env.args)
        return cls.from_spec(env.args[0], env.args[1:])

    @classmethod
    def from_spec(cls, spec: str, args: tuple[str, ...] = ()) -> AgiRoute:
        req = AgiRequest.parse(spec, spec)
        return cls(req.script, req.query, args)


def _digit(value: int | None, reply: AgiReply, command: AgiCommand) -> str | None:
    if value is None:
        raise AgiUnexpectedReplyError(f"{command.name}: non-numeric result", command, reply)
    if value < 0:
        raise AgiChannelError(f"{command.name} failed (error or hang-up)", command, reply)
    if value == 0:
        return None
    try:
        return chr(value)
    except (ValueError, OverflowError):
        raise AgiUnexpectedReplyError(f"{command.name}: result {value}", command, reply) from None


# --------------------------------------------------------------------------- session


class AgiSession:
    """One AGI conversation, after the environment. Transport-agnostic: bytes from Asterisk go to
    :meth:`feed` (``b""`` = EOF), commands go out through ``write``.

    ``hung_up`` turns true when Asterisk sends ``HANGUP`` (or 511 arrives, or ``hangup_probe``
    says so, e.g. classic AGI's SIGHUP). From then on commands that Asterisk refuses on a dead
    channel raise :class:`AgiHangupError` without being sent, while those it allows
    (GET VARIABLE, SET VARIABLE, VERBOSE, EXEC, NOOP, DATABASE ...) still go through.
    """

    def __init__(
        self,
        conn: AgiConnection,
        write: Callable[[bytes], None],
        *,
        route: AgiRoute | None = None,
        hangup_probe: Callable[[], bool] | None = None,
        on_protocol_error: Callable[[], None] | None = None,
    ) -> None:
        if conn.env is None:
            raise ValueError("the AgiConnection has not received the environment yet")
        self.env: AgiEnv = conn.env
        self.route = route if route is not None else AgiRoute.from_env(self.env)
        self._conn = conn
        self._write = write
        self._probe = hangup_probe
        self._on_protocol_error = on_protocol_error
        self._waiters: deque[asyncio.Future[AgiReply]] = deque()
        self._hung_up = False
        self._closed = False
        self._close_reason = "connection closed"
        self.hangup_event = asyncio.Event()
        self.commands_sent = 0

    # -- state

    @property
    def hung_up(self) -> bool:
        if not self._hung_up and self._probe is not None and self._probe():
            self._mark_hung_up()
        return self._hung_up

    @property
    def closed(self) -> bool:
        return self._closed

    def _mark_hung_up(self) -> None:
        if not self._hung_up:
            self._hung_up = True
            self.hangup_event.set()

    # -- input from the transport

    def feed(self, data: bytes) -> None:
        """Bytes received from Asterisk; ``b""`` means EOF."""
        if self._closed:
            return
        self._conn.receive_data(data)
        self.process_events()

    def process_events(self) -> None:
        """Handle the events already buffered in the codec."""
        conn = self._conn
        while not self._closed:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                log.warning("AGI protocol error from Asterisk on %s: %s", self.env.channel, exc)
                self._shut(f"protocol error: {exc}")
                if self._on_protocol_error is not None:
                    self._on_protocol_error()
                return
            if isinstance(event, NeedData):
                return
            if isinstance(event, Hangup):
                self._mark_hung_up()
            elif isinstance(event, Closed):
                self._shut("Asterisk closed the connection")
            elif isinstance(event, AgiEnv):  # pragma: no cover - the codec sends it once
                continue
            else:
                while self._waiters:
                    fut = self._waiters.popleft()
                    if not fut.done():  # a cancelled waiter still consumes its reply
                        fut.set_result(event)
                        break

    def connection_lost(self, exc: BaseException | None = None) -> None:
        self._shut(f"connection lost: {exc}" if exc else "connection closed")

    def _shut(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        self._mark_hung_up()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(AgiConnectionLostError(reason))

    # -- commands

    async def execute(self, command: AgiCommand) -> AgiReply:
        """Send ``command`` and return Asterisk's reply, whatever it is."""
        if self._closed:
            raise AgiConnectionLostError(self._close_reason, command)
        if self.hung_up and not command.runs_dead:
            raise AgiHangupError(f"{command.name}: the channel has hung up", command)
        data = self._conn.send(command)  # LocalProtocolError: our misuse, nothing sent
        fut: asyncio.Future[AgiReply] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.commands_sent += 1
        self._write(data)
        return await fut

    async def command(self, name: str, *args: object) -> AgiResult:
        """Run a command; any reply other than 200 raises a typed :class:`AgiCommandError`."""
        cmd = AgiCommand.of(name, *args)
        reply = await self.execute(cmd)
        if isinstance(reply, AgiResult):
            return reply
        if isinstance(reply, DeadChannel):
            self._mark_hung_up()
            raise AgiHangupError(f"{cmd.name}: {reply.text}", cmd, reply)
        if isinstance(reply, InvalidCommand):
            raise AgiInvalidCommandError(f"{cmd.name}: {reply.text}", cmd, reply)
        if isinstance(reply, UsageError):
            raise AgiUsageError(f"{cmd.name}: {reply.text}", cmd, reply)
        raise AgiUnexpectedReplyError(f"{cmd.name}: {reply.code} {reply.text}", cmd, reply)

    async def _checked(self, name: str, *args: object) -> AgiResult:
        """As :meth:`command`, and ``result=-1`` raises :class:`AgiChannelError`."""
        r = await self.command(name, *args)
        if r.value is not None and r.value < 0:
            raise AgiChannelError(f"{name} failed (error or hang-up)", AgiCommand.of(name, *args), r)
        return r

    async def answer(self) -> None:
        await self._checked("ANSWER")

    async def hangup(self, channel: str | None = None) -> None:
        await self._checked("HANGUP", *(() if channel is None else (channel,)))

    async def noop(self, text: str | None = None) -> None:
        await self.command("NOOP", *(() if text is None else (text,)))

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    async def set_variable(self, name: str, value: object) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        """The value, or None when the variable is not set (``200 result=0``)."""
        r = await self.command("GET VARIABLE", name)
        return r.data if r.value == 1 else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        """Evaluate ``${...}`` expressions, like the dialplan does."""
        args = (expression,) if channel is None else (expression, channel)
        r = await self.command("GET FULL VARIABLE", *args)
        return r.data if r.value == 1 else None

    async def stream_file(self, filename: str, escape_digits: str = "",
                          sample_offset: int | None = None) -> PlaybackResult:
        args: tuple[object, ...] = (filename, escape_digits)
        if sample_offset is not None:
            args += (sample_offset,)
        cmd = AgiCommand.of("STREAM FILE", *args)
        r = await self.command("STREAM FILE", *args)
        return PlaybackResult(_digit(r.value, r, cmd), r.endpos)

    async def get_option(self, filename: str, escape_digits: str = "",
                         timeout_ms: int | None = None) -> PlaybackResult:
        args: tuple[object, ...] = (filename, escape_digits)
        if timeout_ms is not None:
            args += (timeout_ms,)
        cmd = AgiCommand.of("GET OPTION", *args)
        r = await self.command("GET OPTION", *args)
        return PlaybackResult(_digit(r.value, r, cmd), r.endpos)

    async def get_data(self, filename: str, timeout_ms: int | None = None,
                       max_digits: int | None = None) -> DigitsResult:
        """Play ``filename`` and read up to ``max_digits`` DTMF digits."""
        args: list[object] = [filename]
        if timeout_ms is not None or max_digits is not None:
            args.append(0 if timeout_ms is None else timeout_ms)  # 0: Asterisk's default
        if max_digits is not None:
            args.append(max_digits)
        r = await self.command("GET DATA", *args)
        if r.result.startswith("-"):
            raise AgiChannelError("GET DATA failed (error or hang-up)",
                                  AgiCommand.of("GET DATA", *args), r)
        return DigitsResult(r.result, r.data == "timeout")

    async def wait_for_digit(self, timeout_ms: int = -1) -> str | None:
        """The digit pressed, or None on timeout. ``-1`` waits forever."""
        cmd = AgiCommand.of("WAIT FOR DIGIT", timeout_ms)
        r = await self.command("WAIT FOR DIGIT", timeout_ms)
        return _digit(r.value, r, cmd)

    async def say_digits(self, digits: str | int, escape_digits: str = "") -> str | None:
        cmd = AgiCommand.of("SAY DIGITS", digits, escape_digits)
        r = await self.command("SAY DIGITS", digits, escape_digits)
        return _digit(r.value, r, cmd)

    async def say_number(self, number: int, escape_digits: str = "",
                         gender: str | None = None) -> str | None:
        args: tuple[object, ...] = (int(number), escape_digits)
        if gender is not None:
            args += (gender,)
        cmd = AgiCommand.of("SAY NUMBER", *args)
        r = await self.command("SAY NUMBER", *args)
        return _digit(r.value, r, cmd)

    async def say_alpha(self, text: str, escape_digits: str = "") -> str | None:
        cmd = AgiCommand.of("SAY ALPHA", text, escape_digits)
        r = await self.command("SAY ALPHA", text, escape_digits)
        return _digit(r.value, r, cmd)

    async def exec(self, application: str, *args: object) -> int:
        """Run a dialplan application; its arguments are joined with commas. Returns its result."""
        options = ",".join(str(a) for a in args)
        cmd_args = (application,) if not args else (application, options)
        r = await self.command("EXEC", *cmd_args)
        if r.value == -2:
            raise AgiApplicationNotFoundError(
                f"no application {application!r}", AgiCommand.of("EXEC", *cmd_args), r)
        if r.value is None:
            raise AgiUnexpectedReplyError("EXEC: non-numeric result",
                                          AgiCommand.of("EXEC", *cmd_args), r)
        return r.value

    async def set_music(self, on: bool = True, music_class: str | None = None) -> None:
        args: tuple[object, ...] = ("on" if on else "off",)
        if music_class is not None:
            args += (music_class,)
        await self.command("SET MUSIC", *args)

    async def channel_status(self, channel: str | None = None) -> ChannelStatus:
        args = () if channel is None else (channel,)
        r = await self._checked("CHANNEL STATUS", *args)
        try:
            return ChannelStatus(r.value if r.value is not None else -99)
        except ValueError:
            raise AgiUnexpectedReplyError(f"CHANNEL STATUS result {r.result!r}",
                                          AgiCommand.of("CHANNEL STATUS", *args), r) from None

    async def set_context(self, context: str) -> None:
        await self.command("SET CONTEXT", context)

    async def set_extension(self, extension: str) -> None:
        await self.command("SET EXTENSION", extension)

    async def set_priority(self, priority: int | str) -> None:
        await self.command("SET PRIORITY", priority)

    async def goto_on_exit(self, context: str | None = None, extension: str | None = None,
                           priority: int | str | None = None) -> None:
        """Where the dialplan continues when the AGI returns."""
        await self.set_context(context or self.env.context)
        await self.set_extension(extension or self.env.extension)
        await self.set_priority(priority if priority is not None else self.env.priority)

    async def set_callerid(self, callerid: str) -> None:
        await self.command("SET CALLERID", callerid)

    async def set_autohangup(self, seconds: int) -> None:
        await self.command("SET AUTOHANGUP", seconds)

    async def database_get(self, family: str, key: str) -> str | None:
        r = await self.command("DATABASE GET", family, key)
        return r.data if r.value == 1 else None

    async def database_put(self, family: str, key: str, value: object) -> bool:
        return (await self.command("DATABASE PUT", family, key, value)).value == 1

    async def database_del(self, family: str, key: str) -> bool:
        return (await self.command("DATABASE DEL", family, key)).value == 1


# --------------------------------------------------------------------------- server


@dataclass(slots=True)
class ServerStats:
    accepted: int = 0
    sessions: int = 0
    completed: int = 0
    caller_hangups: int = 0
    handler_errors: int = 0
    rejected_busy: int = 0
    rejected_unknown_script: int = 0
    header_timeouts: int = 0
    protocol_errors: int = 0
    session_timeouts: int = 0
    peak_concurrent: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _FastAgiProtocol(asyncio.Protocol):
    def __init__(self, server: FastAgiServer) -> None:
        self._server = server
        self._conn = AgiConnection(max_line=server.max_line)
        self.transport: asyncio.Transport | None = None
        self.session: AgiSession | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._reject = False
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        srv = self._server
        srv.stats.accepted += 1
        srv._protocols.add(self)
        srv._idle.clear()
        if srv._admitted >= srv.max_sessions:
            # Refuse now: Asterisk reads FAILURE after sending its environment -> AGISTATUS=FAILURE.
            self._reject = True
            srv.stats.rejected_busy += 1
            transport.write(self._conn.send_failure())
        else:
            self._admitted = True
            srv._admitted += 1
            srv.stats.peak_concurrent = max(srv.stats.peak_concurrent, srv._admitted)
        self._timer = asyncio.get_running_loop().call_later(srv.header_timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.session is None and self.transport is not None:
            self._server.stats.header_timeouts += 1
            log.info("FastAGI: no environment within %.1fs, closing", self._server.header_timeout)
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.session is not None:
            self.session.feed(data)
            return
        self._conn.receive_data(data)
        self._pump_header()

    def eof_received(self) -> bool | None:
        if self.session is not None:
            self.session.feed(b"")
        else:
            self._conn.receive_data(b"")
            self._pump_header()
        return None  # close our side too

    def _pump_header(self) -> None:
        transport = self.transport
        assert transport is not None
        try:
            event = self._conn.next_event()
        except RemoteProtocolError as exc:
            self._server.stats.protocol_errors += 1
            log.warning("FastAGI: bad environment from %s: %s",
                        transport.get_extra_info("peername"), exc)
            transport.abort()
            return
        if isinstance(event, NeedData):
            return
        if isinstance(event, Closed) or not isinstance(event, AgiEnv):
            transport.close()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reject:
            transport.close()  # the environment is read: close cleanly (FIN, not RST)
            return
        srv = self._server
        route = AgiRoute.from_env(event)
        handler = srv.handlers.get(route.script)
        if handler is None:
            srv.stats.rejected_unknown_script += 1
            log.warning("FastAGI: unknown script %r (%s)", route.script, event.request.url)
            transport.write(self._conn.send_failure())
            transport.close()
            return
        self.session = AgiSession(self._conn, transport.write, route=route,
                                  on_protocol_error=self._on_protocol_error)
        srv.stats.sessions += 1
        task = asyncio.get_running_loop().create_task(
            srv._run_session(self, self.session, handler), name=f"fastagi:{route.script}")
        srv._tasks.add(task)
        task.add_done_callback(srv._task_done)
        self.session.process_events()  # anything that came with the environment (HANGUP)

    def _on_protocol_error(self) -> None:
        self._server.stats.protocol_errors += 1
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.session is not None:
            self.session.connection_lost(exc)
        srv = self._server
        srv._protocols.discard(self)
        if self._admitted:
            self._admitted = False
            srv._admitted -= 1
        srv._check_idle()

    def close(self, failure: bool = False) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if failure:
            with contextlib.suppress(Exception):
                t.write(self._conn.send_failure())
        t.close()


class FastAgiServer:
    """An asyncio FastAGI server.

    ``start()`` binds (``port=0`` picks a free port, see :attr:`port`), ``close()`` stops
    listening, cancels the running sessions and waits for them: the pair fits an aiohttp
    ``cleanup_ctx``::

        async def fastagi_ctx(app):
            server = FastAgiServer(handlers, host="0.0.0.0", port=4573)
            await server.start()
            app[FASTAGI] = server
            yield
            await server.close()
    """

    def __init__(
        self,
        handlers: Mapping[str, AgiHandler],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_sessions: int = 500,
        header_timeout: float = 5.0,
        session_timeout: float | None = None,
        max_line: int = 64 * 1024,
        backlog: int = 1024,
    ) -> None:
        self.handlers = handlers
        self.host = host
        self._port = port
        self.max_sessions = max_sessions
        self.header_timeout = header_timeout
        self.session_timeout = session_timeout
        self.max_line = max_line
        self.backlog = backlog
        self.stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._protocols: set[_FastAgiProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._admitted = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def port(self) -> int:
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def active_sessions(self) -> int:
        """Admitted connections: reading their environment or running a handler."""
        return self._admitted

    def _check_idle(self) -> None:
        if not self._protocols and not self._tasks:
            self._idle.set()
        else:
            self._idle.clear()

    async def wait_idle(self) -> None:
        """Until no connection is open and no handler runs (tests, graceful drain)."""
        await self._idle.wait()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _FastAgiProtocol(self), self.host, self._port, backlog=self.backlog,
            reuse_address=True)
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for proto in list(self._protocols):
            if proto.transport is not None:
                proto.transport.abort()
        await server.wait_closed()

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._check_idle()

    async def _run_session(self, proto: _FastAgiProtocol, session: AgiSession,
                           handler: AgiHandler) -> None:
        failure = False
        try:
            if self.session_timeout is None:
                await handler(session)
            else:
                async with asyncio.timeout(self.session_timeout):
                    await handler(session)
            self.stats.completed += 1
        except AgiHangupError as exc:
            self.stats.caller_hangups += 1
            log.debug("FastAGI %s: caller gone (%s)", session.route.script, exc)
        except TimeoutError:
            self.stats.session_timeouts += 1
            failure = True
            log.warning("FastAGI %s: session over %.1fs, ended with FAILURE",
                        session.route.script, self.session_timeout)
        except Exception:
            self.stats.handler_errors += 1
            failure = True
            log.exception("FastAGI handler %r failed on %s", session.route.script,
                          session.env.channel)
        finally:
            # Asterisk never closes a FastAGI socket itself (not even after HANGUP): we must.
            proto.close(failure=failure and not session.closed)
