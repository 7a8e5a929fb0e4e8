"""The asyncio AMI client: login, ActionID correlation, event lists, subscriptions, keep-alive
and reconnect.  All protocol work is done by the sans-I/O codec in :mod:`.ami`.

Lifecycle::

    client = AMIClient("127.0.0.1", 5038, "cc", "secret", auth="md5")
    await client.start()                    # first connect + login; raises on bad credentials
    sub = client.subscribe("Hangup")        # async iterator of events
    result = await client.send_action("QueueStatus", Queue="support")
    for item in result.events: ...
    await client.close()

Rules (from the lessons of panoramisk and wazo):

* an action resolves on its Response, or, when the Response says ``EventList: start``, on the
  event carrying ``EventList: Complete`` and the same ActionID (never on a message text);
* every pending action fails with :class:`AMIConnectionLost` when the connection drops, and
  nothing is replayed after a reconnect (an Originate must never run twice);
* a Ping that is not answered within ``ping_timeout`` means the connection is half-open: it is
  dropped and the client reconnects with exponential back-off and jitter;
* after each login the client resyncs (CoreShowChannels, QueueStatus) and emits a local
  ``Resynced`` event carrying what it got; a ``Shutdown`` event or EOF starts the reconnect;
* ``CancelledError`` is never swallowed.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import itertools
import logging
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from callcenter.asterisk.ami import (
    DEFAULT_MAX_FRAME_SIZE,
    Action,
    AMIConnection,
    AMIError,
    Banner,
    Event,
    FieldValue,
    Headers,
    Response,
    _HeaderAccess,
    make_action,
)

log = logging.getLogger(__name__)

__all__ = [
    "AMIActionError",
    "AMIActionTimeout",
    "AMIAuthenticationError",
    "AMIClient",
    "AMIClientClosed",
    "AMIClientError",
    "AMIConnectionLost",
    "AMINotConnected",
    "AMIPermissionDenied",
    "ActionResult",
    "LocalEvent",
    "Subscription",
]


# --------------------------------------------------------------------------------------------
# errors


class AMIClientError(AMIError):
    """Base class of the client's errors."""


class AMIConnectionLost(AMIClientError, ConnectionError):
    """The connection dropped (EOF, Shutdown, half-open, protocol error) before the answer."""


class AMINotConnected(AMIConnectionLost):
    """The client has no logged-in connection right now."""


class AMIClientClosed(AMIConnectionLost):
    """The client was closed."""


class AMIAuthenticationError(AMIClientError):
    """Login refused (``Authentication failed``)."""


class AMIPermissionDenied(AMIClientError):
    """Asterisk answered ``Permission denied`` (not logged in, or the user lacks the class)."""


class AMIActionTimeout(AMIClientError, TimeoutError):
    """No complete answer to an action within its timeout."""


class AMIActionError(AMIClientError):
    """``Response: Error`` to an action sent with ``check=True``."""

    def __init__(self, result: ActionResult) -> None:
        super().__init__(f"{result.response.name}: {result.response.message}")
        self.result = result


# --------------------------------------------------------------------------------------------
# results and local events


@dataclass(frozen=True)
class ActionResult:
    """The answer to one action: its Response, plus the items of an event list."""

    response: Response
    events: tuple[Event, ...] = ()
    complete: Event | None = None  # the ``...Complete`` event closing a list

    @property
    def ok(self) -> bool:
        return self.response.ok

    @property
    def is_list(self) -> bool:
        return self.complete is not None

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.response.get(key, default)


@dataclass(frozen=True)
class LocalEvent(_HeaderAccess):
    """A synthetic event made by the client, delivered to subscribers like an AMI event:
    ``Connected``, ``Disconnected`` (header ``Reason``) and ``Resynced`` (``events`` holds the
    resync lists: the CoreShowChannel and QueueStatus items)."""

    name: str
    headers: Headers = ()
    events: tuple[Event, ...] = ()
    action_id: str | None = None


AnyEvent: TypeAlias = "Event | LocalEvent"
EventFilter: TypeAlias = "Callable[[AnyEvent], bool] | Mapping[str, str]"
Callback: TypeAlias = "Callable[[AnyEvent], Awaitable[None] | None]"


class Subscription:
    """Events matching a name and/or a filter.  Iterate it (``async for ev in sub``) or give a
    callback.  ``maxsize`` bounds the queue; when it is full the oldest event is dropped and
    counted in :attr:`dropped`."""

    def __init__(
        self, client: AMIClient, name: str | None, filter: EventFilter | None,
        callback: Callback | None, maxsize: int,
    ) -> None:
        self._client = client
        self.name = name.lower() if name else None
        self.filter = filter
        self.callback = callback
        self.queue: asyncio.Queue[AnyEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def matches(self, event: AnyEvent) -> bool:
        if self.name is not None and event.name.lower() != self.name:
            return False
        flt = self.filter
        if flt is None:
            return True
        if callable(flt):
            return bool(flt(event))
        return all(event.get(k) == v for k, v in flt.items())

    def _deliver(self, event: AnyEvent) -> None:
        if self.callback is not None:
            result = self.callback(event)
            if inspect.isawaitable(result):
                self._client._spawn(result)
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> AnyEvent:
        return await self.queue.get()

    def unsubscribe(self) -> None:
        self._client._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[AnyEvent]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[AnyEvent]:
        while True:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()


# --------------------------------------------------------------------------------------------
# one connection


@dataclass(eq=False)
class _Pending:
    action: Action
    future: asyncio.Future[ActionResult]
    response: Response | None = None
    events: list[Event] = field(default_factory=list)
    early: list[Event] = field(default_factory=list)  # events with our ActionID before Response


class _Conn:
    """One TCP connection: codec, pending actions, reader and keep-alive tasks."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_frame_size: int,
        number: int,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = AMIConnection(max_frame_size=max_frame_size)
        self.pending: dict[str, _Pending] = {}
        self.banner: asyncio.Future[Banner] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []
        self.logged_in = False
        self.number = number


# --------------------------------------------------------------------------------------------
# the client


class AMIClient:
    """An AMI client that stays connected.  See the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        auth: str = "plain",
        events: bool | str = True,
        action_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        login_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 5.0,
        reconnect: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        backoff_factor: float = 2.0,
        resync: Sequence[str | Action] = ("CoreShowChannels", "QueueStatus"),
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if auth not in ("plain", "md5"):
            raise ValueError("auth must be 'plain' or 'md5'")
        self.host, self.port = host, port
        self.username, self._secret = username, secret
        self.auth = auth
        self.events_mask = _mask(events)
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff_factor = backoff_factor
        self.resync_actions = tuple(resync)
        self.max_frame_size = max_frame_size
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._ids = itertools.count(1)
        self._prefix = f"cc{_random.getrandbits(24):06x}"
        self._conn: _Conn | None = None
        self._connected = asyncio.Event()
        self._subs: list[Subscription] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._numbers = itertools.count(1)
        self.connections = 0  # successful logins so far
        self.banner: Banner | None = None
        self.last_received: float | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.logged_in and not conn.lost.done()

    async def start(self) -> None:
        """Connect and log in once (errors propagate), then keep the connection up."""
        if self._supervisor is not None:
            raise RuntimeError("AMIClient.start() called twice")
        self._closing = False
        conn = await self._connect_once()
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(conn), name="ami-supervisor")

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def close(self) -> None:
        """Log off (best effort), drop the connection, fail pending actions, stop reconnecting."""
        if self._closing:
            return
        self._closing = True
        conn = self._conn
        if conn is not None and conn.logged_in and not conn.lost.done():
            with contextlib.suppress(AMIClientError, OSError):
                await self._send(conn, make_action("Logoff", action_id=self._next_id()),
                                 timeout=min(1.0, self.action_timeout), check_denied=False)
        if conn is not None:
            self._lose(conn, AMIClientClosed("client closed"))
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            sup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sup
        if conn is not None:
            await self._stop_conn(conn)
        self._conn = None
        self._connected.clear()
        for task in list(self._bg):
            task.cancel()
        if self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)

    async def __aenter__(self) -> AMIClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- actions ---------------------------------------------------------------------------

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def send_action(
        self,
        action: Action | str,
        fields: Mapping[str, FieldValue] | None = None,
        *,
        timeout: float | None = None,
        check: bool = False,
        **kwargs: FieldValue,
    ) -> ActionResult:
        """Send an action and wait for its Response, or for the whole event list.

        Raises :class:`AMINotConnected` when not logged in, :class:`AMIConnectionLost` when the
        connection drops first, :class:`AMIActionTimeout`, :class:`AMIPermissionDenied`, and
        :class:`AMIActionError` for ``Response: Error`` when ``check`` is true.
        """
        conn = self._conn
        if conn is None or not conn.logged_in or conn.lost.done():
            raise AMINotConnected("not connected to Asterisk")
        result = await self._send(conn, self._with_id(action, fields, kwargs), timeout=timeout)
        if check and not result.ok:
            raise AMIActionError(result)
        return result

    def _with_id(
        self, action: Action | str, fields: Mapping[str, FieldValue] | None,
        kwargs: Mapping[str, FieldValue],
    ) -> Action:
        if isinstance(action, str):
            items = [*(fields or {}).items(), *kwargs.items()]
            return make_action(action, items, action_id=self._next_id())
        if fields or kwargs:
            raise TypeError("give fields either in the Action or as arguments")
        if action.action_id is not None:
            return action
        aid = self._next_id()
        headers = list(action.headers)
        headers.insert(1 if headers and headers[0][0] == "Action" else 0, ("ActionID", aid))
        return Action(action.name, tuple(headers), aid)

    async def ping(self, timeout: float | None = None) -> ActionResult:
        return await self.send_action("Ping", timeout=timeout)

    async def command(self, command: str, timeout: float | None = None) -> tuple[str, ...]:
        """Run a CLI command; returns its output lines (``Output:`` or Follows body)."""
        result = await self.send_action("Command", Command=command, timeout=timeout)
        return result.response.output

    async def set_events(self, mask: bool | str) -> ActionResult:
        """``Events`` action: True/"on", False/"off", or a mask such as ``"call,agent"``.
        The mask is remembered and used again at the next login."""
        self.events_mask = _mask(mask)
        return await self.send_action("Events", EventMask=self.events_mask)

    async def _send(
        self, conn: _Conn, action: Action, *, timeout: float | None = None,
        check_denied: bool = True,
    ) -> ActionResult:
        assert action.action_id is not None
        if conn.lost.done():
            raise AMIConnectionLost(f"connection lost: {conn.lost.result()}")
        fut: asyncio.Future[ActionResult] = asyncio.get_running_loop().create_future()
        conn.pending[action.action_id] = _Pending(action, fut)
        try:
            conn.writer.write(conn.codec.send(action))
            async with asyncio.timeout(self.action_timeout if timeout is None else timeout):
                result = await fut
        except TimeoutError:
            raise AMIActionTimeout(
                f"no answer to {action.name} ({action.action_id}) in time") from None
        finally:
            conn.pending.pop(action.action_id, None)
        if check_denied and result.response.name == "Error" and (
                result.response.message or "").lower() == "permission denied":
            raise AMIPermissionDenied(f"{action.name}: Permission denied")
        return result

    # ---- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self,
        name: str | None = None,
        *,
        filter: EventFilter | None = None,
        callback: Callback | None = None,
        maxsize: int = 10_000,
    ) -> Subscription:
        """Events by name (case-insensitive; None for all, local events included) and/or by
        filter: a callable, or a mapping of header values that must all match."""
        sub = Subscription(self, name, filter, callback, maxsize)
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    def _dispatch(self, event: AnyEvent) -> None:
        for sub in list(self._subs):
            try:
                if sub.matches(event):
                    sub._deliver(event)
            except Exception:  # a subscriber's bug must not kill the reader
                log.exception("AMI subscriber failed on %s", event.name)

    def _emit_local(self, name: str, events: tuple[Event, ...] = (), **headers: str) -> None:
        self._dispatch(LocalEvent(name, (("Event", name), *headers.items()), events))

    def _spawn(self, aw: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await aw
            except Exception:
                log.exception("AMI event callback failed")

        task = asyncio.get_running_loop().create_task(run())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # ---- connecting ------------------------------------------------------------------------

    async def _connect_once(self) -> _Conn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout)
        conn = _Conn(reader, writer, self.max_frame_size, next(self._numbers))
        loop = asyncio.get_running_loop()
        conn.tasks.append(loop.create_task(self._read_loop(conn), name="ami-reader"))
        try:
            self.banner = await asyncio.wait_for(asyncio.shield(conn.banner), self.login_timeout)
            await self._login(conn)
            if conn.lost.done():
                raise AMIConnectionLost(f"connection lost at login: {conn.lost.result()}")
            conn.logged_in = True
            self._conn = conn
            self.connections += 1
            self._connected.set()
            if self.ping_interval:
                conn.tasks.append(loop.create_task(self._keepalive(conn), name="ami-ping"))
            self._emit_local("Connected", Connection=str(conn.number))
            await self._resync(conn)
        except BaseException as exc:
            self._lose(conn, exc if isinstance(exc, Exception) else AMIClientClosed("cancelled"))
            await self._stop_conn(conn)
            raise
        return conn

    async def _login(self, conn: _Conn) -> None:
        timeout = self.login_timeout
        if self.auth == "md5":
            challenge = await self._send(conn, make_action(
                "Challenge", action_id=self._next_id(), AuthType="MD5"), timeout=timeout)
            _check_login(challenge)
            key = hashlib.md5(
                (challenge.get("Challenge", "") or "").encode() + self._secret.encode()
            ).hexdigest()
            login = make_action("Login", action_id=self._next_id(), AuthType="MD5",
                                Username=self.username, Key=key, Events=self.events_mask)
        else:
            login = make_action("Login", action_id=self._next_id(), Username=self.username,
                                Secret=self._secret, Events=self.events_mask)
        _check_login(await self._send(conn, login, timeout=timeout, check_denied=False))

    async def _resync(self, conn: _Conn) -> None:
        if not self.resync_actions:
            return
        items: list[Event] = []
        for spec in self.resync_actions:
            action = self._with_id(spec, None, {})
            result = await self._send(conn, action, timeout=self.action_timeout)
            items.extend(result.events)
        self._emit_local("Resynced", tuple(items), Connection=str(conn.number),
                         Items=str(len(items)))

    async def _supervise(self, conn: _Conn | None) -> None:
        attempt = 0
        while True:
            if conn is not None:
                reason = await asyncio.shield(conn.lost)
                await self._stop_conn(conn)
                if self._conn is conn:
                    self._conn = None
                    self._connected.clear()
                self._emit_local("Disconnected", Reason=str(reason))
                conn = None
            if self._closing or not self.reconnect:
                return
            delay = min(self.backoff_max, self.backoff_initial * self.backoff_factor ** attempt)
            delay = delay / 2 + delay / 2 * self._random()  # "equal jitter"
            attempt += 1
            await self._sleep(delay)
            if self._closing:
                return
            try:
                conn = await self._connect_once()
            except (TimeoutError, OSError, AMIError) as exc:
                log.warning("AMI reconnect %d to %s:%s failed: %r", attempt, self.host,
                            self.port, exc)
                continue
            attempt = 0

    def backoff_delays(self, attempts: int) -> list[float]:
        """The delay bounds (without jitter) of the first reconnect attempts, for reading."""
        return [min(self.backoff_max, self.backoff_initial * self.backoff_factor ** n)
                for n in range(attempts)]

    # ---- the connection's tasks ------------------------------------------------------------

    async def _read_loop(self, conn: _Conn) -> None:
        codec = conn.codec
        try:
            while True:
                data = await conn.reader.read(65536)
                self.last_received = self._clock()
                codec.receive_data(data)
                for msg in codec.events():
                    self._route(conn, msg)
                    if conn.lost.done():
                        return
                if not data:
                    raise AMIConnectionLost("EOF from Asterisk")
        except (OSError, AMIError) as exc:
            self._lose(conn, exc)

    def _route(self, conn: _Conn, msg: Banner | Response | Event | Action) -> None:
        if isinstance(msg, Event):
            aid = msg.action_id
            pend = conn.pending.get(aid) if aid is not None else None
            if pend is not None and not pend.future.done():
                if pend.response is None:
                    pend.early.append(msg)
                    return
                if pend.response.is_list_start:
                    if msg.is_list_complete:
                        pend.future.set_result(
                            ActionResult(pend.response, tuple(pend.events), msg))
                    else:
                        pend.events.append(msg)
                    return
            self._dispatch(msg)
            if msg.name == "Shutdown":
                self._lose(conn, AMIConnectionLost("Asterisk is shutting down"))
        elif isinstance(msg, Response):
            pend = conn.pending.get(msg.action_id) if msg.action_id is not None else None
            if pend is None or pend.future.done():
                log.debug("AMI response for no pending action: %r", msg.action_id)
                return
            pend.response = msg
            early, pend.early = pend.early, []
            if msg.is_list_start:
                for ev in early:
                    self._route(conn, ev)
            else:
                pend.future.set_result(ActionResult(msg))
                for ev in early:
                    self._dispatch(ev)
        elif isinstance(msg, Banner):
            if not conn.banner.done():
                conn.banner.set_result(msg)

    async def _keepalive(self, conn: _Conn) -> None:
        assert self.ping_interval
        while not conn.lost.done():
            await asyncio.sleep(self.ping_interval)
            try:
                await self._send(conn, make_action("Ping", action_id=self._next_id()),
                                 timeout=self.ping_timeout)
            except AMIActionTimeout:
                self._lose(conn, AMIConnectionLost(
                    f"no Ping reply within {self.ping_timeout}s (half-open connection)"))
                return
            except AMIClientError:
                return

    def _lose(self, conn: _Conn, reason: BaseException) -> None:
        """Mark the connection dead: fail every pending action, close the socket."""
        if conn.lost.done():
            return
        conn.lost.set_result(reason)
        if self._conn is conn:
            self._connected.clear()
        log.info("AMI connection %d lost: %r", conn.number, reason)
        err_cls = AMIClientClosed if isinstance(reason, AMIClientClosed) else AMIConnectionLost
        for pend in conn.pending.values():
            if not pend.future.done():
                err = err_cls(f"{pend.action.name} ({pend.action.action_id}): {reason}")
                err.__cause__ = reason
                pend.future.set_exception(err)
                pend.future.exception()  # mark retrieved: the waiter may have timed out
        if not conn.banner.done():
            conn.banner.set_exception(AMIConnectionLost(f"no banner: {reason}"))
            conn.banner.exception()
        transport = conn.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()  # half-open: do not wait for a flush that never comes

    async def _stop_conn(self, conn: _Conn) -> None:
        current = asyncio.current_task()
        tasks = [t for t in conn.tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        conn.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await conn.writer.wait_closed()


def _mask(events: bool | str) -> str:
    if events is True:
        return "on"
    if events is False:
        return "off"
    return events


def _check_login(result: ActionResult) -> None:
    if result.ok:
        return
    message = result.response.message or ""
    if message.lower() == "permission denied":
        raise AMIPermissionDenied(message)
    raise AMIAuthenticationError(message or result.response.name)

