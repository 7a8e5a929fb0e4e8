"""The FastAGI server over real TCP, with a test client that plays Asterisk."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from callcenter.asterisk.agi import (
    AgiCommand,
    AgiReply,
    AgiResult,
    DeadChannel,
    InvalidCommand,
    UnknownCommand,
    UsageError,
)
from callcenter.asterisk.fastagi import (
    AgiApplicationNotFoundError,
    AgiChannelError,
    AgiConnectionLostError,
    AgiHandler,
    AgiHangupError,
    AgiInvalidCommandError,
    AgiSession,
    AgiUsageError,
    ChannelStatus,
    DigitsResult,
    FastAgiServer,
    PlaybackResult,
)
from tests.callcenter.asterisk.test_agi_support import FakeAsterisk, make_env

pytestmark = pytest.mark.timeout(20)

VARS = {"CHANNEL": "Local/100@test-00000001;2", "CALLERID(num)": "+14155550199"}


def asterisk_like(cmd: AgiCommand | UnknownCommand) -> AgiReply:
    """Replies shaped like the captures."""
    if isinstance(cmd, UnknownCommand):
        return InvalidCommand()
    a = cmd.args
    match cmd.name:
        case "GET VARIABLE" | "GET FULL VARIABLE":
            return AgiResult("1", VARS[a[0]]) if a[0] in VARS else AgiResult("0")
        case "SET VARIABLE":
            if len(a) != 2:
                return UsageError(usage=("Sets a variable to the current channel.",))
            VARS[a[0]] = a[1]
            return AgiResult("1")
        case "STREAM FILE":
            return AgiResult("0", None, (("endpos", "8000"),))
        case "GET DATA":
            return AgiResult("", "timeout")
        case "EXEC":
            return AgiResult("-2") if a[0] == "NoSuchApplication" else AgiResult("0")
        case "VERBOSE" | "SET MUSIC" | "HANGUP":
            return AgiResult("1")
        case "CHANNEL STATUS":
            return AgiResult("6")
        case "SAY DIGITS":
            return AgiResult(str(ord("5")))
        case _:
            return AgiResult("0")


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., asyncio.Future[FastAgiServer]]]:
    servers: list[FastAgiServer] = []

    async def make(handlers: dict[str, AgiHandler], **kw: object) -> FastAgiServer:
        srv = FastAgiServer(handlers, host="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]
        await srv.start()
        servers.append(srv)
        return srv

    yield make  # type: ignore[misc]
    for srv in servers:
        await srv.close()


async def run_call(port: int, script: str = "ivr", respond=asterisk_like, **env_kw: object) -> FakeAsterisk:
    fake = FakeAsterisk(make_env(script, port=port, **env_kw), respond)  # type: ignore[arg-type]
    await fake.connect(port)
    await fake.serve()
    return fake


async def test_typed_session_api_and_routing(server_factory) -> None:
    seen: dict[str, object] = {}

    async def ivr(s: AgiSession) -> None:
        seen["route"] = s.route
        seen["callerid"] = s.env.callerid
        await s.answer()
        seen["unset"] = await s.get_variable("NOT_SET")
        seen["cid"] = await s.get_variable("CALLERID(num)")
        seen["data"] = await s.get_data("silence/1", 2000, 4)
        seen["play"] = await s.stream_file("silence/1", "#")
        seen["exec"] = await s.exec("Playback", "silence/1")
        with pytest.raises(AgiApplicationNotFoundError):
            await s.exec("NoSuchApplication", "foo")
        await s.set_variable("ROUTE_TO", "Local/1001@agents")
        seen["say"] = await s.say_digits("123", "5")
        seen["num"] = await s.say_number(1234)
        seen["status"] = await s.channel_status()
        await s.set_music(True, "default")
        await s.verbose("routing done", 1)
        seen["digit"] = await s.wait_for_digit(100)
        with pytest.raises(AgiInvalidCommandError):
            await s.command("THIS", "IS", "NOT", "A", "COMMAND")
        with pytest.raises(AgiUsageError) as ei:
            await s.command("SET VARIABLE", "ONLYNAME")
        seen["usage"] = ei.value.usage

    srv = await server_factory({"ivr": ivr})
    fake = await run_call(srv.port, "ivr", query="lang=en", args=("first arg", "second"))
    route = seen["route"]
    assert route.script == "ivr" and route.params == {"lang": "en"}  # type: ignore[attr-defined]
    assert route.args == ("first arg", "second")  # type: ignore[attr-defined]
    assert seen["callerid"] == "+14155550199"
    assert seen["unset"] is None and seen["cid"] == "+14155550199"
    assert seen["data"] == DigitsResult("", True)
    assert seen["play"] == PlaybackResult(None, 8000)
    assert seen["exec"] == 0 and seen["say"] == "5" and seen["num"] is None
    assert seen["status"] is ChannelStatus.UP and seen["digit"] is None
    assert seen["usage"] == "Sets a variable to the current channel."
    assert VARS["ROUTE_TO"] == "Local/1001@agents"
    wire = [c for c in fake.commands if isinstance(c, AgiCommand)]
    assert wire[0] == AgiCommand("ANSWER")
    assert AgiCommand("GET DATA", ("silence/1", "2000", "4")) in wire
    assert AgiCommand("VERBOSE", ("routing done", "1")) in wire
    assert fake.closed_by_server and fake.failure is None  # AGISTATUS=SUCCESS
    await srv.wait_idle()
    assert srv.stats.completed == 1 and srv.active_sessions == 0


async def test_caller_hangs_up_mid_command_like_agi_edge(server_factory) -> None:
    """WAIT FOR DIGIT -> result=-1, then HANGUP; ANSWER is refused here (Asterisk: 511), while
    GET VARIABLE / VERBOSE / EXEC still run on the dead channel; then the server closes."""
    seen: list[object] = []

    async def ivr(s: AgiSession) -> None:
        await s.answer()
        with pytest.raises(AgiChannelError):
            await s.wait_for_digit(15000)
        assert s.hung_up
        with pytest.raises(AgiHangupError):
            await s.answer()
        seen.append(await s.get_variable("CHANNEL"))
        await s.verbose("still here after hangup")
        seen.append(await s.exec("Playback", "silence/1"))
        await s.noop("after-hangup")

    def respond(cmd: AgiCommand | UnknownCommand) -> AgiReply | None:
        if isinstance(cmd, AgiCommand) and cmd.name == "WAIT FOR DIGIT":
            fake.reply(AgiResult("-1"))
            fake.hangup()
            return None
        return asterisk_like(cmd)

    srv = await server_factory({"ivr": ivr})
    fake = FakeAsterisk(make_env(port=srv.port), respond)
    await fake.connect(srv.port)
    await fake.serve()
    names = [c.name for c in fake.commands if isinstance(c, AgiCommand)]
    assert names == ["ANSWER", "WAIT FOR DIGIT", "GET VARIABLE", "VERBOSE", "EXEC", "NOOP"]
    assert seen == ["Local/100@test-00000001;2", 0]
    assert fake.closed_by_server  # Asterisk does not close: the server must


async def test_hangup_while_idle_and_511(server_factory) -> None:
    gate = asyncio.Event()
    result: list[object] = []

    async def ivr(s: AgiSession) -> None:
        await s.answer()
        gate.set()
        await asyncio.wait_for(s.hangup_event.wait(), 5)
        with pytest.raises(AgiHangupError):
            await s.stream_file("welcome")
        result.append(await s.get_variable("CHANNEL"))

    async def dead(s: AgiSession) -> None:
        with pytest.raises(AgiHangupError) as ei:
            await s.answer()  # Asterisk says 511: not permitted on a dead channel
        result.append(ei.value.reply)
        assert s.hung_up

    def respond(cmd: AgiCommand | UnknownCommand) -> AgiReply:
        if isinstance(cmd, AgiCommand) and cmd.name == "ANSWER" and fake.env[1][1] == "dead":
            return DeadChannel()
        return asterisk_like(cmd)

    srv = await server_factory({"ivr": ivr, "dead": dead})
    fake = FakeAsterisk(make_env(port=srv.port), respond)
    await fake.connect(srv.port)
    assert await fake.next_command() == AgiCommand("ANSWER")
    fake.reply(AgiResult("0"))
    await gate.wait()
    fake.hangup()
    await fake.serve()
    fake = FakeAsterisk(make_env("dead", port=srv.port), respond)
    await fake.connect(srv.port)
    await fake.serve()
    assert result == ["Local/100@test-00000001;2", DeadChannel()]


async def test_eof_mid_command(server_factory) -> None:
    errors: list[BaseException] = []

    async def ivr(s: AgiSession) -> None:
        try:
            await s.stream_file("welcome")
        except AgiConnectionLostError as exc:
            errors.append(exc)
            raise

    srv = await server_factory({"ivr": ivr})
    fake = FakeAsterisk(make_env(port=srv.port), asterisk_like)
    await fake.connect(srv.port)
    assert isinstance(await fake.next_command(), AgiCommand)
    assert fake.writer is not None
    fake.writer.close()
    await srv.wait_idle()
    assert len(errors) == 1 and isinstance(errors[0], AgiHangupError)
    assert srv.stats.caller_hangups == 1 and srv.stats.handler_errors == 0


async def test_header_timeout_and_eof_before_env(server_factory) -> None:
    calls: list[str] = []

    async def ivr(s: AgiSession) -> None:
        calls.append("ran")

    srv = await server_factory({"ivr": ivr}, header_timeout=0.2)
    # 1. half an environment, then silence: closed after the header timeout
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"agi_network: yes\nagi_request: agi://x/ivr\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF from the server
    writer.close()
    # 2. connect and close at once
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.close()
    await writer.wait_closed()
    await srv.wait_idle()
    assert srv.stats.header_timeouts == 1 and calls == [] and srv.active_sessions == 0
    # 3. garbage instead of an environment: dropped, counted
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await srv.wait_idle()
    assert srv.stats.protocol_errors == 1


async def test_unknown_script_fails_fast(server_factory) -> None:
    srv = await server_factory({"ivr": lambda s: asyncio.sleep(0)})
    fake = await run_call(srv.port, "nosuch")
    assert fake.failure is not None and fake.commands == []  # AGISTATUS=FAILURE
    assert fake.closed_by_server
    assert srv.stats.rejected_unknown_script == 1


async def test_concurrency_limit(server_factory) -> None:
    gate = asyncio.Event()
    started: list[str] = []

    async def hold(s: AgiSession) -> None:
        started.append(s.env.channel)
        await s.answer()
        await gate.wait()
        await s.verbose("released")

    srv = await server_factory({"hold": hold}, max_sessions=2)
    fakes = [FakeAsterisk(make_env("hold", port=srv.port, channel=f"Local/{i}@t;2"), asterisk_like)
             for i in range(2)]
    for f in fakes:
        await f.connect(srv.port)
        assert await f.next_command() == AgiCommand("ANSWER")  # both admitted and running
    assert srv.active_sessions == 2
    over = await run_call(srv.port, "hold")  # the third: FAILURE at once, then closed
    assert over.failure is not None and over.commands == [] and over.closed_by_server
    assert srv.stats.rejected_busy == 1
    gate.set()
    for f in fakes:
        f.reply(AgiResult("0"))
    await asyncio.gather(*(f.serve() for f in fakes))
    assert all(f.failure is None for f in fakes) and len(started) == 2
    await srv.wait_idle()
    after = await run_call(srv.port, "hold")  # capacity is back
    assert after.failure is None and srv.stats.completed == 3


async def test_one_session_crashing_does_not_affect_another(server_factory) -> None:
    crashed = asyncio.Event()
    done: list[int] = []

    async def crash(s: AgiSession) -> None:
        await s.answer()
        raise RuntimeError("bug in one handler")

    async def steady(s: AgiSession) -> None:
        await s.answer()
        await crashed.wait()
        for i in range(5):
            await s.set_variable("STEP", i)
        done.append(5)

    srv = await server_factory({"crash": crash, "steady": steady})
    good = FakeAsterisk(make_env("steady", port=srv.port), asterisk_like)
    await good.connect(srv.port)
    assert await good.next_command() == AgiCommand("ANSWER")
    bad = await run_call(srv.port, "crash")
    assert bad.failure is not None  # AGISTATUS=FAILURE: the dialplan falls back
    crashed.set()
    good.reply(AgiResult("0"))
    await good.serve()
    assert done == [5] and good.failure is None
    assert srv.stats.handler_errors == 1 and srv.stats.completed == 1


async def test_protocol_error_from_asterisk_drops_only_that_session(server_factory) -> None:
    errors: list[BaseException] = []

    async def ivr(s: AgiSession) -> None:
        try:
            await s.answer()
        except AgiConnectionLostError as exc:
            errors.append(exc)
            raise

    srv = await server_factory({"ivr": ivr})
    fake = FakeAsterisk(make_env(port=srv.port), asterisk_like)
    await fake.connect(srv.port)
    assert await fake.next_command() == AgiCommand("ANSWER")
    fake.send_raw(b"this is not AGI\n")
    await fake.wait_closed()
    await srv.wait_idle()
    assert len(errors) == 1 and srv.stats.protocol_errors == 1
    ok = await run_call(srv.port, "ivr")
    assert ok.failure is None and srv.stats.completed == 1


async def test_session_timeout_sends_failure(server_factory) -> None:
    async def slow(s: AgiSession) -> None:
        await s.answer()
        await asyncio.Event().wait()

    srv = await server_factory({"slow": slow}, session_timeout=0.2)
    fake = await run_call(srv.port, "slow")
    assert fake.failure is not None and srv.stats.session_timeouts == 1


async def test_close_cancels_sessions_without_swallowing_cancellation(server_factory) -> None:
    outcome: list[str] = []
    entered = asyncio.Event()

    async def ivr(s: AgiSession) -> None:
        try:
            entered.set()
            await s.wait_for_digit(-1)  # blocks until the test ends it
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    srv = await server_factory({"ivr": ivr})
    fake = FakeAsterisk(make_env(port=srv.port), asterisk_like)
    await fake.connect(srv.port)
    assert await fake.next_command() == AgiCommand("WAIT FOR DIGIT", ("-1",))
    await entered.wait()
    await srv.close()
    assert outcome == ["cancelled"]
    await fake.wait_closed()
    assert srv.active_sessions == 0


async def test_pipelined_commands_keep_their_order(server_factory) -> None:
    got: list[object] = []

    async def ivr(s: AgiSession) -> None:
        got.extend(await asyncio.gather(*(s.get_variable(n) for n in ["CHANNEL", "X", "CALLERID(num)"])))

    srv = await server_factory({"ivr": ivr})
    await run_call(srv.port)
    assert got == ["Local/100@test-00000001;2", None, "+14155550199"]
