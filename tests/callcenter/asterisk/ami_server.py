"""A small scripted AMI server for the client tests: real TCP on 127.0.0.1, answers from the
Asterisk 22 captures, and misbehaviour on demand (drop mid-list, half-open, garbage, Shutdown,
restart)."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from callcenter.asterisk.ami import (
    Action,
    AMIConnection,
    Banner,
    ConnectionClosed,
    Event,
    Response,
    Role,
    make_event,
    make_response,
)

CAPTURES = Path(__file__).resolve().parents[3].parent / "shared" / "asterisk-captures"
if not CAPTURES.is_dir():  # a clone with shared/ beside it
    CAPTURES = Path("/work/shared/asterisk-captures")


def capture_messages(name: str) -> list[Banner | Response | Event]:
    conn = AMIConnection()
    conn.receive_data((CAPTURES / name).read_bytes())
    conn.receive_data(b"")
    return [m for m in conn.events() if not isinstance(m, Action)]


def with_action_id(msg: Response | Event, action_id: str) -> Response | Event:
    headers = tuple((k, action_id if k == "ActionID" else v) for k, v in msg.headers)
    if msg.action_id is None:
        headers += (("ActionID", action_id),)
    return type(msg)(msg.name, headers, action_id, msg.body)


def captured_answer(name: str, action_id: str) -> list[Response | Event]:
    """The Response and list items a capture holds for one ActionID."""
    return [m for m in capture_messages(name)
            if isinstance(m, (Response, Event)) and m.action_id == action_id]


Handler = Callable[["ServerConn", Action], Awaitable[None]]


class ServerConn:
    def __init__(self, server: ScriptedAMIServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.codec = AMIConnection(Role.SERVER)
        self.logged_in = False
        self.challenge: str | None = None
        self.muted = False  # half-open: read but never answer
        self.closed = asyncio.Event()

    def send(self, *msgs: Banner | Response | Event) -> None:
        if not self.muted:
            self.writer.write(b"".join(self.codec.send(m) for m in msgs))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def abort(self) -> None:
        self.writer.transport.abort()


class ScriptedAMIServer:
    def __init__(self, username: str = "cc", secret: str = "ccsecret") -> None:
        self.username = username
        self.secret = secret
        self.port = 0
        self.conns: list[ServerConn] = []
        self.actions: list[tuple[int, Action]] = []  # (connection number, action)
        self.logins = 0
        self.changed = asyncio.Condition()
        self.handlers: dict[str, Handler] = {}
        self.denied: set[str] = set()  # actions answered "Permission denied"
        self.drop_mid_list: set[str] = set()  # list actions dropped after the first item
        self.mute_after_login = False
        self.garbage_after_login: bytes | None = None
        self.channels: list[Event] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and drop every connection (like Asterisk going down)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in self.conns:
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)
        await asyncio.wait_for(wait(), timeout)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def action_names(self) -> list[str]:
        return [a.name for _, a in self.actions]

    # ---- one connection ---------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = ServerConn(self, reader, writer)
        number = len(self.conns) + 1
        self.conns.append(conn)
        await self._notify()
        try:
            conn.send(Banner("Asterisk Call Manager/11.0.0", "11.0.0"))
            while True:
                data = await reader.read(65536)
                conn.codec.receive_data(data)
                while True:
                    msg = conn.codec.next_event()
                    if isinstance(msg, ConnectionClosed):
                        return
                    if not isinstance(msg, Action):
                        break
                    self.actions.append((number, msg))
                    await self._answer(conn, msg)
                    await self._notify()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            conn.closed.set()
            writer.transport.abort()
            self._tasks.discard(task)
            with contextlib.suppress(RuntimeError):
                await self._notify()

    async def _answer(self, conn: ServerConn, action: Action) -> None:
        aid = action.action_id
        name = action.name.lower()
        if name == "challenge":
            conn.challenge = str(random.randint(10**8, 10**9))
            conn.send(make_response("Success", action_id=aid, Challenge=conn.challenge))
            return
        if name == "login":
            await self._login(conn, action)
            return
        if not conn.logged_in or action.name in self.denied:
            conn.send(make_response("Error", action_id=aid, Message="Permission denied"))
            return
        if action.name in self.handlers:
            await self.handlers[action.name](conn, action)
            return
        if name == "ping":
            conn.send(make_response("Success", action_id=aid, Ping="Pong",
                                    Timestamp=f"{time.time():.6f}"))
        elif name == "events":
            mask = action.get("EventMask", "on")
            conn.send(make_response("Success", action_id=aid,
                                    Events="Off" if mask == "off" else "On"))
        elif name == "coreshowchannels":
            items = [with_action_id(e, aid or "") for e in self.channels]
            await self._send_list(conn, action, "Channels will follow", items,
                                  "CoreShowChannelsComplete")
        elif name == "queuestatus":
            answer = [with_action_id(m, aid or "")
                      for m in captured_answer("ami-queue-admin.raw", "qstatus-1")]
            await self._send_captured_list(conn, action, answer)
        elif name == "status":
            answer = [with_action_id(m, aid or "")
                      for m in captured_answer("ami-edge.raw", "status-1")]
            await self._send_captured_list(conn, action, answer)
        elif name == "command":
            conn.send(make_response("Success", action_id=aid, Message="Command output follows",
                                    Output=["line one", "line two"]))
        elif name == "originate":
            conn.send(make_response("Success", action_id=aid,
                                    Message="Originate successfully queued"))
        elif name == "logoff":
            conn.send(make_response("Goodbye", action_id=aid,
                                    Message="Thanks for all the fish."))
            await conn.writer.drain()
            conn.writer.close()
        else:
            conn.send(make_response("Error", action_id=aid, Message=(
                f"Invalid/unknown command: {action.name}. "
                "Use Action: ListCommands to show available commands.")))

    async def _login(self, conn: ServerConn, action: Action) -> None:
        aid = action.action_id
        if action.get("AuthType", "").lower() == "md5":
            expected = hashlib.md5(
                ((conn.challenge or "") + self.secret).encode()).hexdigest()
            ok = conn.challenge is not None and action.get("Key") == expected
        else:
            ok = action.get("Secret") == self.secret
        ok = ok and action.get("Username") == self.username
        if not ok:
            conn.send(make_response("Error", action_id=aid, Message="Authentication failed"))
            await conn.writer.drain()
            conn.abort()
            return
        conn.logged_in = True
        self.logins += 1
        conn.send(make_response("Success", action_id=aid, Message="Authentication accepted"),
                  make_event("FullyBooted", Privilege="system,all", Uptime="474",
                             LastReload="474", Status="Fully Booted"))
        if self.garbage_after_login is not None:
            conn.send_raw(self.garbage_after_login)
        if self.mute_after_login:
            conn.muted = True

    async def _send_list(self, conn: ServerConn, action: Action, message: str,
                         items: list[Response | Event], complete: str) -> None:
        aid = action.action_id
        answer: list[Response | Event] = [
            make_response("Success", action_id=aid, EventList="start", Message=message),
            *items,
            make_event(complete, {"EventList": "Complete", "ListItems": str(len(items))},
                       action_id=aid)]
        await self._send_captured_list(conn, action, answer)

    async def _send_captured_list(self, conn: ServerConn, action: Action,
                                  answer: list[Response | Event]) -> None:
        if action.name in self.drop_mid_list:
            conn.send(*answer[:2])
            await conn.writer.drain()
            conn.abort()
            return
        conn.send(*answer)
