"""The AGI renderer over real TCP: FastAgiServer on port 0, a scripted caller playing Asterisk."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

from callcenter.asterisk.agi import AgiResult
from callcenter.asterisk.fastagi import AgiSession, FastAgiServer
from callcenter.ivr_agi import load_flow_file, make_ivr_handler, route_variables
from ivr import Engine, Finished, FlowError, load_flow
from tests.ivr.agi_caller import HANG_UP, IvrCaller, drive_call
from tests.ivr.helpers import DEMO, NIGHT, OPEN

pytestmark = pytest.mark.timeout(20)

CUSTOMERS = {
    "+14155550100": {"id": 1, "name": "Ann", "tier": "vip", "type": "customer", "language": "en"},
    "+14155550199": {"id": 2, "name": "Bob", "tier": "regular", "type": "customer", "language": "zh"},
}


async def identify_caller(phone: str) -> Mapping[str, Any] | None:
    return CUSTOMERS.get(phone)


async def account_balance(account: str) -> Mapping[str, Any]:
    return {"balance": 1234, "currency": "USD"}


LOOKUPS = {"identify_caller": identify_caller, "account_balance": account_balance}
ENGINE = Engine(load_flow_file(DEMO, functions=LOOKUPS, sounds_dir=DEMO.parent / "prompts"))

Serve = Callable[..., Awaitable[tuple[FastAgiServer, list[Finished]]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[FastAgiServer] = []

    async def start(engine: Engine = ENGINE, lookups: Mapping[str, Any] = LOOKUPS,
                    now: datetime = OPEN) -> tuple[FastAgiServer, list[Finished]]:
        results: list[Finished] = []

        async def on_finish(session: AgiSession, done: Finished) -> None:
            results.append(done)

        handler = make_ivr_handler(engine, lookups, clock=lambda: now, on_finish=on_finish)
        srv = FastAgiServer({"ivr": handler}, host="127.0.0.1", port=0)
        await srv.start()
        servers.append(srv)
        return srv, results

    yield start
    for srv in servers:
        await srv.close()


async def test_vip_fast_lane_in_english(serve: Serve) -> None:
    srv, results = await serve()
    caller = await drive_call(srv.port, IvrCaller(["1"]), callerid="+14155550100")
    assert caller.log[0] == "ANSWER"
    # the language menu: English half, then the Chinese half read with GET DATA (4 s, 1 digit)
    assert caller.log[1:3] == ["STREAM FILE demo/en/for_english 0123456789*#",
                               "GET DATA demo/zh/for_chinese 4000 1"]
    assert caller.played[2:] == ["demo/en/welcome", "demo/en/vip_welcome"]
    v = caller.variables
    assert (v["ROUTE_KIND"], v["QUEUE"], v["PRIORITY"], v["ROUTE_TO"]) == ("queue", "vip", "50",
                                                                            "Local/vip@cc-queues")
    assert v["IVR_PATH"] == "choose_language>english>welcome>identify>screen>vip_welcome>vip_queue"
    (done,) = results
    assert done.result.kind == "queue" and done.error is None
    await srv.wait_idle()
    assert srv.stats.completed == 1 and srv.stats.handler_errors == 0


async def test_chinese_billing_with_balance(serve: Serve) -> None:
    srv, results = await serve()
    caller = await drive_call(srv.port, IvrCaller(["2", "1", "12345#", "1"]))
    assert "SET VARIABLE CHANNEL(language) zh" in caller.log
    assert "GET DATA demo/zh/enter_account 7000 11" in caller.log  # one more than max: over-long is seen
    assert ("SAY NUMBER", "1234") in caller.said
    assert caller.played[caller.played.index("demo/zh/balance_is") + 1] == "demo/zh/dollars"
    v = caller.variables
    assert (v["ROUTE_KIND"], v["QUEUE"], v["SKILLS"], v["IVR_LANGUAGE"]) == ("queue", "billing", "billing:3",
                                                                             "zh")
    (done,) = results
    assert "12345" not in repr(done.path) and "1234" not in repr(done.path)


async def test_after_hours_callback_to_the_caller_id(serve: Serve) -> None:
    srv, results = await serve(now=NIGHT)
    caller = await drive_call(srv.port, IvrCaller(["1", "1", "1"]))
    assert "demo/en/closed" in caller.played
    assert ("SAY DIGITS", "14155550199") in caller.said
    v = caller.variables
    assert (v["ROUTE_KIND"], v["CALLBACK_NUMBER"], v["QUEUE"]) == ("callback", "14155550199", "callbacks")


async def test_barge_in_during_a_prompt_part(serve: Serve) -> None:
    srv, _ = await serve()
    caller = await drive_call(srv.port, IvrCaller([], barge={"demo/en/for_english": "2"}),
                              callerid="+14155550100")
    assert "GET DATA demo/zh/for_chinese 4000 1" not in caller.log  # the digit came during the first part
    assert caller.variables["IVR_LANGUAGE"] == "zh"


async def test_survey_entry(serve: Serve) -> None:
    srv, results = await serve()
    caller = await drive_call(srv.port, IvrCaller(["4"]), query="entry=survey")
    assert caller.played[0] == "demo/en/csat"
    assert caller.variables["CSAT"] == "4" and caller.variables["SURVEY_SCORE"] == "4"
    assert caller.variables["ROUTE_KIND"] == "survey"
    assert results[0].result.describe() == "csat=4"


async def test_caller_hangs_up_mid_flow(serve: Serve) -> None:
    srv, results = await serve()
    caller = await drive_call(srv.port, IvrCaller(["1", HANG_UP]))
    (done,) = results
    assert done.result.kind == "abandoned" and done.result.describe() == "abandoned at main_menu"
    assert caller.variables["ROUTE_KIND"] == "abandoned"  # SET VARIABLE works on a dead channel
    assert not any(line.startswith("STREAM FILE") for line in caller.log[caller.log.index(
        "GET DATA demo/en/main_menu 5000 1"):])
    await srv.wait_idle()
    assert srv.stats.completed == 1 and srv.stats.handler_errors == 0


SMALL = """
flow: small
default_queue: general
entries: {main: who}
nodes:
  who:
    type: lookup
    function: identify_caller
    args: {phone: "{caller_id}"}
    timeout: 0.2
    next: known
    on_error: oops
  known: {type: queue, queue: known}
  oops: {type: queue, queue: oops}
"""


async def raises(phone: str) -> Mapping[str, Any]:
    raise ConnectionError("crm down")


async def hangs(phone: str) -> Mapping[str, Any]:
    await asyncio.sleep(30)
    return {}


async def returns_junk(phone: str) -> Any:
    return ["not", "a", "mapping"]


@pytest.mark.parametrize("fn", [raises, hangs, returns_junk])
async def test_lookup_that_raises_hangs_or_returns_junk_follows_the_error_exit(serve: Serve, fn: Any) -> None:
    srv, results = await serve(Engine(load_flow(SMALL)), {"identify_caller": fn})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    caller = await drive_call(srv.port, IvrCaller())
    assert loop.time() - t0 < 3
    assert caller.variables["QUEUE"] == "oops"
    assert any(p.event == "lookup_failed" for p in results[0].path)


async def test_lookup_failure_without_error_exit_goes_to_the_default_queue(serve: Serve) -> None:
    text = SMALL.replace("    on_error: oops\n", "").replace("  oops: {type: queue, queue: oops}\n", "")
    flow = load_flow(text)
    srv, results = await serve(Engine(flow), {"identify_caller": hangs})
    caller = await drive_call(srv.port, IvrCaller())
    v = caller.variables
    assert (v["ROUTE_KIND"], v["QUEUE"]) == ("queue", "general")
    assert "identify_caller" in v["IVR_ERROR"]
    assert results[0].error is not None


async def test_missing_lookup_function(serve: Serve) -> None:
    srv, _ = await serve(Engine(load_flow(SMALL)), {})
    caller = await drive_call(srv.port, IvrCaller())
    assert caller.variables["QUEUE"] == "oops"


class MissingSounds(IvrCaller):
    """Asterisk answers result=-1 for a sound file it does not have (the caller is still there)."""

    def respond(self, cmd: Any) -> Any:
        if getattr(cmd, "name", "") == "STREAM FILE" and cmd.args[0].endswith("welcome"):
            self.log.append("STREAM FILE " + cmd.args[0])
            return AgiResult("-1", None, (("endpos", "0"),))
        return super().respond(cmd)


async def test_a_missing_sound_file_does_not_stop_the_flow(serve: Serve) -> None:
    srv, _ = await serve()
    caller = await drive_call(srv.port, MissingSounds(["1"]), callerid="+14155550100")
    assert "STREAM FILE demo/en/welcome" in caller.log
    assert caller.variables["QUEUE"] == "vip"


def test_route_variables_and_loader_refusal(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: x\nnodes: {a: {type: nope}}\n")
    with pytest.raises(FlowError):
        load_flow_file(bad)
    with pytest.raises(FlowError):
        load_flow_file(DEMO, functions=["identify_caller"])  # account_balance not provided
    _, step = ENGINE.start({"caller_id": ""}, OPEN, entry="survey")
    assert not isinstance(step, Finished)
    state, step = ENGINE.start({}, OPEN, entry="nope")
    assert isinstance(step, Finished)
    v = route_variables(step)
    assert v["ROUTE_KIND"] == "queue" and v["QUEUE"] == "general" and "IVR_ERROR" in v
