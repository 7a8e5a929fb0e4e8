"""The TwiML renderer, pure: the engine's steps as VoiceResponse verbs (parsed back as XML)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.twiml.voice_response import VoiceResponse

from callcenter.ivr_agi import load_flow_file
from callcenter.settings import DEFAULT_CONFIG_DIR
from callcenter.twilio import twiml
from ivr import Ask, AudioFile, Choice, Digits, Engine, NoInput, Play, Prompt, Say
from ivr.render_twiml import TwimlOptions, ask, digits_input, play

NOW = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def _xml(resp: VoiceResponse) -> ET.Element:
    return ET.fromstring(str(resp))


def test_menu_is_one_digit_gather_with_the_prompts_inside_in_their_language():
    prompt = Prompt("main_menu", "zh", "账单查询请按1。", (AudioFile("demo/zh/main_menu"),))
    step = Ask("main", (prompt,), "zh", "menu", choices=(Choice("1", "账单"),), timeout=4.2)
    resp = VoiceResponse()
    ask(resp, step, "https://x.example/twilio/gather?n=3", TwimlOptions())
    [gather] = _xml(resp)
    assert gather.tag == "Gather"
    assert gather.attrib == {"input": "dtmf", "action": "https://x.example/twilio/gather?n=3",
                             "method": "POST", "numDigits": "1", "finishOnKey": "", "timeout": "5",
                             "actionOnEmptyResult": "true"}
    [say] = gather
    assert say.tag == "Say" and say.attrib["language"] == "zh-CN" and say.text == "账单查询请按1。"


def test_free_digits_end_on_the_terminator_and_may_run_one_over():
    step = Ask("acct", (Prompt("enter", "en", "Enter it.", ()),), "en", "digits", min_digits=4, max_digits=8,
               terminator="#")
    resp = VoiceResponse()
    ask(resp, step, "/g", TwimlOptions())
    gather = _xml(resp)[0]
    assert gather.attrib["numDigits"] == "9" and gather.attrib["finishOnKey"] == "#"


def test_sound_files_are_played_from_the_sounds_url_and_values_are_said():
    prompt = Prompt("balance", "en", "Your balance is 12.50 dollars.",
                    (AudioFile("demo/en/balance_is"), Say("number", "12.50"), Say("digits", "+1415"),
                     AudioFile("demo/en/dollars")))
    resp = VoiceResponse()
    play(resp, Play("bal", (prompt,), "en"), TwimlOptions(sounds_base_url="https://cdn.example/s/",
                                                           voice="Polly.Joanna"))
    verbs = [(v.tag, v.text, v.attrib.get("voice")) for v in _xml(resp)]
    assert verbs == [("Play", "https://cdn.example/s/demo/en/balance_is.wav", None),
                     ("Say", "12.50", "Polly.Joanna"), ("Say", "1 4 1 5", "Polly.Joanna"),
                     ("Play", "https://cdn.example/s/demo/en/dollars.wav", None)]


def test_digits_parameter_becomes_engine_input_safely():
    assert digits_input(None) == NoInput() and digits_input("") == NoInput()
    assert digits_input("12#") == Digits("12#")
    assert digits_input("1<b>") == Digits("1???")
    long = digits_input("9" * 1000)
    assert isinstance(long, Digits) and len(long.digits) == 65  # still a flood for the engine


def test_demo_flow_renders_every_step_until_the_queue():
    flow = load_flow_file(DEFAULT_CONFIG_DIR / "ivr" / "demo.yaml")
    engine = Engine(flow)
    state, step = engine.start({"caller_id": "+12025550144"}, NOW)
    assert isinstance(step, Ask)
    resp = VoiceResponse()
    ask(resp, step, "/g?n=1", TwimlOptions())
    said = [s.attrib["language"] for s in _xml(resp)[0]]
    assert said == ["en-US"]
    state, step = engine.feed(state, Digits("1"), NOW)
    assert isinstance(step, Play)  # welcome


def test_queue_hold_and_agent_dial_twiml():
    resp = VoiceResponse()
    twiml.enqueue(resp, "billing", "https://x/twilio/wait", "https://x/twilio/dequeued?a=0")
    [enq] = _xml(resp)
    assert (enq.tag, enq.text, enq.attrib["waitUrl"]) == ("Enqueue", "billing", "https://x/twilio/wait")
    resp = VoiceResponse()
    twiml.hold(resp, 3, "zh", "https://m/hold.mp3", TwimlOptions())
    say, music = _xml(resp)
    assert say.text == "您前面排在第3位。" and say.attrib["language"] == "zh-CN" and music.text == "https://m/hold.mp3"
    assert twiml.dial_target("+14155550100", None) == ("number", "+14155550100")
    assert twiml.dial_target("sip:alice@pbx.example", None) == ("sip", "sip:alice@pbx.example")
    assert twiml.dial_target("1001", "agents.sip.twilio.com") == ("sip", "sip:1001@agents.sip.twilio.com")
    assert twiml.dial_target("client:alice", None) == ("client", "alice")
    assert twiml.dial_target("1001", None) is None and twiml.dial_target(None, "d") is None
    assert twiml.dial_target("PJSIP/1001", "d") is None
    resp = VoiceResponse()
    twiml.dial(resp, ("sip", "sip:1001@d"), "https://x/twilio/dial?a=1", "https://x/twilio/status?leg=agent&a=1",
               20)
    [dial] = _xml(resp)
    assert dial.attrib["timeout"] == "20" and dial.attrib["action"].endswith("dial?a=1")
    [sip] = dial
    assert sip.tag == "Sip" and sip.text == "sip:1001@d"
    assert sip.attrib["statusCallbackEvent"] == "initiated ringing answered completed"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_digits_parameter_is_safe_for_the_engine(raw):
    """Whatever Twilio (or an attacker with the token) puts in Digits, the engine takes it without
    failing, and the recorded path holds keypad keys and ? only."""
    flow = load_flow_file(DEFAULT_CONFIG_DIR / "ivr" / "demo.yaml")
    engine = Engine(flow)
    state, _step = engine.start({"caller_id": "+12025550144"}, NOW)
    inp = digits_input(raw)
    state, step = engine.feed(state, inp, NOW)
    if isinstance(inp, Digits):
        assert len(inp.digits) <= 65 and set(inp.digits) <= set("0123456789*#?")
    for entry in state.path:
        if entry.event in ("digits", "invalid"):
            assert set(entry.detail) <= set("0123456789*#?. ()abcdefghijklmnopqrstuvwxyz"), entry
