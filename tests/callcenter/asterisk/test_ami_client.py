"""The asyncio AMI client over real TCP against the scripted server (ami_server.py)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from callcenter.asterisk.ami import Action, make_event
from callcenter.asterisk.ami_client import (
    AMIActionError,
    AMIActionTimeout,
    AMIAuthenticationError,
    AMIClient,
    AMIClientClosed,
    AMIConnectionLost,
    AMINotConnected,
    AMIPermissionDenied,
    LocalEvent,
)
from tests.callcenter.asterisk.ami_server import ScriptedAMIServer, capture_messages

pytestmark = pytest.mark.timeout(20)
WAIT = 5.0  # upper bound of every wait; tests finish far sooner


class FakeSleep:
    """Injected back-off sleep: records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedAMIServer]:
    srv = ScriptedAMIServer()
    await srv.start()
    yield srv
    await srv.stop()


def make_client(server: ScriptedAMIServer, **kw: object) -> AMIClient:
    opts: dict[str, object] = dict(
        action_timeout=2.0, connect_timeout=2.0, login_timeout=2.0, ping_interval=None,
        sleep=FakeSleep(), random=lambda: 0.5)
    opts.update(kw)
    return AMIClient("127.0.0.1", server.port, "cc", "ccsecret", **opts)  # type: ignore[arg-type]


async def next_local(sub_queue: asyncio.Queue[object], name: str) -> LocalEvent:
    async def find() -> LocalEvent:
        while True:
            ev = await sub_queue.get()
            if isinstance(ev, LocalEvent) and ev.name == name:
                return ev
    return await asyncio.wait_for(find(), WAIT)


async def until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), WAIT)


# ---- login -----------------------------------------------------------------------------------


async def test_plain_login_and_resync(server: ScriptedAMIServer) -> None:
    server.channels = [make_event("CoreShowChannel", Channel="Local/2001@agents-1;1")]
    client = make_client(server)
    local = client.subscribe(filter=lambda e: isinstance(e, LocalEvent))
    await client.start()
    try:
        assert client.connected and client.banner is not None
        assert client.banner.version == "11.0.0"
        login = server.actions[0][1]
        assert login.name == "Login" and login["Secret"] == "ccsecret" and login["Events"] == "on"
        await next_local(local.queue, "Connected")  # type: ignore[arg-type]
        resynced = await next_local(local.queue, "Resynced")  # type: ignore[arg-type]
        names = [e.name for e in resynced.events]
        assert names == ["CoreShowChannel", "QueueParams", "QueueMember", "QueueMember",
                         "QueueEntry", "QueueEntry"]
        assert server.action_names() == ["Login", "CoreShowChannels", "QueueStatus"]
    finally:
        await client.close()
    assert server.action_names()[-1] == "Logoff"


async def test_md5_challenge_login(server: ScriptedAMIServer) -> None:
    client = make_client(server, auth="md5", resync=())
    await client.start()
    try:
        assert [a.name for _, a in server.actions] == ["Challenge", "Login"]
        login = server.actions[1][1]
        assert login["AuthType"] == "MD5" and "Secret" not in login and len(login["Key"]) == 32
        assert (await client.ping()).response["Ping"] == "Pong"
    finally:
        await client.close()


@pytest.mark.parametrize("auth", ["plain", "md5"])
async def test_bad_secret_is_an_authentication_error(
        server: ScriptedAMIServer, auth: str) -> None:
    client = AMIClient("127.0.0.1", server.port, "cc", "wrong-secret", auth=auth,
                       login_timeout=2.0)
    with pytest.raises(AMIAuthenticationError, match="Authentication failed"):
        await client.start()
    assert not client.connected
    await client.close()


async def test_permission_denied_is_a_clear_error(server: ScriptedAMIServer) -> None:
    server.denied.add("Originate")
    client = make_client(server, resync=())
    await client.start()
    try:
        with pytest.raises(AMIPermissionDenied):
            await client.send_action("Originate", Channel="Local/1@x", Exten="1")
        assert client.connected
    finally:
        await client.close()


async def test_not_connected_before_start(server: ScriptedAMIServer) -> None:
    client = make_client(server)
    with pytest.raises(AMINotConnected):
        await client.ping()


# ---- actions ---------------------------------------------------------------------------------


async def test_event_list_ends_on_eventlist_complete(server: ScriptedAMIServer) -> None:
    status = [m for m in capture_messages("ami-edge.raw") if m.action_id == "status-1"]

    async def status_with_decoy(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        aid = action.action_id or ""
        from tests.callcenter.asterisk.ami_server import with_action_id
        msgs = [with_action_id(m, aid) for m in status]  # type: ignore[arg-type]
        # a decoy: an item whose name and text look final but has no EventList: Complete
        decoy = make_event("StatusComplete", Message="Complete", action_id=aid)
        conn.send(msgs[0], decoy, *msgs[1:])

    server.handlers["Status"] = status_with_decoy
    client = make_client(server, resync=())
    await client.start()
    try:
        result = await client.send_action("Status")
        assert result.ok and result.is_list and result.response.is_list_start
        assert result.complete is not None and result.complete["EventList"] == "Complete"
        assert [e.name for e in result.events] == ["StatusComplete"] + ["Status"] * (
            len(status) - 2)
        assert int(result.complete["ListItems"]) == len(status) - 2
    finally:
        await client.close()


async def test_concurrent_actions_are_correlated_by_action_id(
        server: ScriptedAMIServer) -> None:
    gate = asyncio.Event()

    async def slow_ping(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        async def later() -> None:
            await gate.wait()
            from callcenter.asterisk.ami import make_response
            conn.send(make_response("Success", action_id=action.action_id, Ping="Pong",
                                    Timestamp="slow"))
            await conn.writer.drain()
        asyncio.get_running_loop().create_task(later())

    server.handlers["Ping"] = slow_ping
    client = make_client(server, resync=())
    await client.start()
    try:
        ping = asyncio.ensure_future(client.ping())
        cmd = await client.command("core show version")  # answered while the Ping waits
        assert cmd == ("line one", "line two")
        assert not ping.done()
        gate.set()
        assert (await asyncio.wait_for(ping, WAIT)).get("Timestamp") == "slow"
    finally:
        await client.close()


async def test_action_timeout_keeps_the_connection(server: ScriptedAMIServer) -> None:
    async def never(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        return None

    server.handlers["QueueSummary"] = never
    client = make_client(server, resync=())
    await client.start()
    try:
        with pytest.raises(AMIActionTimeout):
            await client.send_action("QueueSummary", timeout=0.05)
        assert client.connected
        assert (await client.ping()).ok
    finally:
        await client.close()


async def test_check_raises_on_error_response(server: ScriptedAMIServer) -> None:
    client = make_client(server, resync=())
    await client.start()
    try:
        result = await client.send_action("NoSuchAction")
        assert not result.ok and result.response.message is not None
        with pytest.raises(AMIActionError):
            await client.send_action("NoSuchAction", check=True)
    finally:
        await client.close()


async def test_cancelled_error_is_not_swallowed(server: ScriptedAMIServer) -> None:
    async def never(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        return None

    server.handlers["QueueSummary"] = never
    client = make_client(server, resync=())
    await client.start()
    try:
        task = asyncio.ensure_future(client.send_action("QueueSummary"))
        await until(lambda: "QueueSummary" in server.action_names())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client._conn is not None and not client._conn.pending
    finally:
        await client.close()


# ---- events ----------------------------------------------------------------------------------


async def test_subscriptions_by_name_filter_and_callback(server: ScriptedAMIServer) -> None:
    client = make_client(server, resync=())
    hangups = client.subscribe("hangup")
    by_dict = client.subscribe(filter={"Channel": "Local/b;1"})
    seen: list[str] = []

    async def on_event(ev: object) -> None:
        seen.append(ev.name)  # type: ignore[attr-defined]

    client.subscribe("Newchannel", callback=on_event)
    await client.start()
    try:
        conn = server.conns[-1]
        conn.send(make_event("Newchannel", Channel="Local/a;1"),
                  make_event("Hangup", Channel="Local/a;1"),
                  make_event("Hangup", Channel="Local/b;1"))
        first = await asyncio.wait_for(hangups.get(), WAIT)
        second = await asyncio.wait_for(hangups.get(), WAIT)
        assert [first.get("Channel"), second.get("Channel")] == ["Local/a;1", "Local/b;1"]
        assert (await asyncio.wait_for(by_dict.get(), WAIT)).name == "Hangup"
        await until(lambda: seen == ["Newchannel"])
        hangups.unsubscribe()
        off = await client.set_events(False)
        assert off.get("Events") == "Off"
        assert server.actions[-1][1]["EventMask"] == "off"
        assert (await client.set_events("call,agent")).get("Events") == "On"
    finally:
        await client.close()


# ---- failures and reconnects -----------------------------------------------------------------


async def test_drop_mid_list_fails_pending_and_reconnects(server: ScriptedAMIServer) -> None:
    client = make_client(server, resync=("QueueStatus",))
    local = client.subscribe(filter=lambda e: isinstance(e, LocalEvent))
    await client.start()
    await next_local(local.queue, "Resynced")  # type: ignore[arg-type]
    server.drop_mid_list.add("Status")
    with pytest.raises(AMIConnectionLost):
        await client.send_action("Status")
    await next_local(local.queue, "Disconnected")  # type: ignore[arg-type]
    server.drop_mid_list.clear()
    resynced = await next_local(local.queue, "Resynced")  # type: ignore[arg-type]
    assert resynced["Connection"] == "2" and len(resynced.events) == 5
    assert server.logins == 2 and client.connections == 2
    assert client._sleep.delays == [0.5 * 0.5 + 0.5 * 0.5 * 0.5]  # type: ignore[attr-defined]
    await client.close()


async def test_originate_is_never_replayed(server: ScriptedAMIServer) -> None:
    async def drop(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        conn.abort()  # the connection dies before Asterisk answers

    server.handlers["Originate"] = drop
    client = make_client(server, resync=())
    local = client.subscribe("Connected")
    await client.start()
    await asyncio.wait_for(local.get(), WAIT)
    with pytest.raises(AMIConnectionLost):
        await client.send_action("Originate", Channel="Local/2001@agents", Application="Wait",
                                 Data="4", Async=True)
    await asyncio.wait_for(local.get(), WAIT)  # reconnected
    await client.ping()
    assert server.action_names().count("Originate") == 1
    assert server.action_names()[-3:] == ["Originate", "Login", "Ping"]
    await client.close()


async def test_half_open_connection_is_detected_by_ping(server: ScriptedAMIServer) -> None:
    server.mute_after_login = True  # logs in, then never answers again
    client = make_client(server, resync=(), ping_interval=0.02, ping_timeout=0.1)
    local = client.subscribe(filter=lambda e: isinstance(e, LocalEvent))
    await client.start()
    server.mute_after_login = False
    gone = await next_local(local.queue, "Disconnected")  # type: ignore[arg-type]
    assert "half-open" in (gone.get("Reason") or "")
    await next_local(local.queue, "Connected")  # type: ignore[arg-type]
    assert (await client.ping()).ok
    await client.close()


async def test_garbage_from_the_server_reconnects(server: ScriptedAMIServer) -> None:
    client = make_client(server, resync=())
    local = client.subscribe(filter=lambda e: isinstance(e, LocalEvent))
    await client.start()
    await next_local(local.queue, "Connected")  # type: ignore[arg-type]
    server.conns[-1].send_raw(b"\x00\xffthis is not AMI\r\n\r\n")
    gone = await next_local(local.queue, "Disconnected")  # type: ignore[arg-type]
    assert "without any header" in (gone.get("Reason") or "")
    await next_local(local.queue, "Connected")  # type: ignore[arg-type]
    assert (await client.ping()).ok
    await client.close()


async def test_garbage_during_login_fails_start(server: ScriptedAMIServer) -> None:
    server.garbage_after_login = b"Foo: bar\r\n\r\n"
    client = make_client(server, resync=())
    with pytest.raises(AMIConnectionLost):
        await client.start()
    await client.close()


async def test_shutdown_event_and_server_restart(server: ScriptedAMIServer) -> None:
    client = make_client(server, resync=("CoreShowChannels",))
    local = client.subscribe(filter=lambda e: isinstance(e, LocalEvent))
    shutdowns = client.subscribe("Shutdown")
    await client.start()
    await next_local(local.queue, "Resynced")  # type: ignore[arg-type]
    # Asterisk stops: Shutdown event (bytes of the capture), then it is down for a while
    shutdown = (capture_messages("ami-shutdown-observer.raw"))[-1]
    assert shutdown.name == "Shutdown"
    sleep: FakeSleep = client._sleep  # type: ignore[assignment]
    port = server.port
    server.conns[-1].send(shutdown)  # type: ignore[arg-type]
    await server.stop()
    assert (await asyncio.wait_for(shutdowns.get(), WAIT)).get("Shutdown") == "Cleanly"
    await next_local(local.queue, "Disconnected")  # type: ignore[arg-type]
    await until(lambda: len(sleep.delays) >= 4)  # connection refused a few times
    server.port = port
    await server.start()
    resynced = await next_local(local.queue, "Resynced")  # type: ignore[arg-type]
    assert resynced["Connection"] != "1"
    # exponential back-off with jitter (random() = 0.5 -> 3/4 of the bound), capped
    bounds = client.backoff_delays(len(sleep.delays))
    assert sleep.delays == [b * 0.75 for b in bounds]
    assert bounds[:4] == [0.5, 1.0, 2.0, 4.0]
    await client.close()


async def test_eof_fails_pending_and_close_is_clean(server: ScriptedAMIServer) -> None:
    async def never(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        return None

    server.handlers["QueueSummary"] = never
    client = make_client(server, resync=(), reconnect=False)
    await client.start()
    pending = asyncio.ensure_future(client.send_action("QueueSummary"))
    await until(lambda: "QueueSummary" in server.action_names())
    server.conns[-1].writer.close()  # EOF
    with pytest.raises(AMIConnectionLost):
        await asyncio.wait_for(pending, WAIT)
    await until(lambda: not client.connected)
    await client.close()
    with pytest.raises(AMINotConnected):
        await client.ping()


async def test_close_fails_pending_actions(server: ScriptedAMIServer) -> None:
    async def never(conn, action: Action) -> None:  # type: ignore[no-untyped-def]
        return None

    server.handlers["QueueSummary"] = never
    server.handlers["Logoff"] = never
    client = make_client(server, resync=())
    await client.start()
    pending = asyncio.ensure_future(client.send_action("QueueSummary"))
    await until(lambda: "QueueSummary" in server.action_names())
    await client.close()
    with pytest.raises(AMIClientClosed):
        await pending
    assert client._supervisor is None and not client.connected
