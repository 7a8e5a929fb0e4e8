"""Each node type of the flow language, through the pure engine."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr import (
    AbandonedResult,
    Ask,
    AudioFile,
    CallbackResult,
    CallLookup,
    Digits,
    Finished,
    HangupResult,
    HungUp,
    LookupFailed,
    LookupResult,
    NoInput,
    Play,
    Played,
    QueueResult,
    Say,
    SurveyResult,
    TransferResult,
    VoicemailResult,
)
from tests.ivr.helpers import events, flow, run

PROMPTS = """
hello: {en: "Hello {name}.", zh: "你好 {name}。"}
menu: {en: "Press 1 or 2.", zh: "请按1或2。"}
bad: {en: "Invalid.", zh: "无效。"}
quiet: {en: "Nothing heard.", zh: "没有输入。"}
"""


def test_play_renders_text_and_default_audio_per_language() -> None:
    e = flow("""
        start: {type: play, prompt: hello, next: done}
        done: {type: hangup}
        """, languages="[en, zh]", head="audio_prefix: acme\n", prompts=PROMPTS)
    state, step = e.start({"name": "Ann"}, datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(step, Play)
    (p,) = step.prompts
    assert (p.text, p.language, p.audio) == ("Hello Ann.", "en", (AudioFile("acme/en/hello"),))
    state, step = e.start({"name": "Ann"}, datetime(2026, 1, 1, tzinfo=UTC), language="zh")
    assert isinstance(step, Play) and step.prompts[0].text == "你好 Ann。"
    assert step.prompts[0].audio == (AudioFile("acme/zh/hello"),)
    state, step = e.feed(state, Played())
    assert isinstance(step, Finished) and step.result == HangupResult()


def test_play_with_spoken_values() -> None:
    e = flow("""
        start:
          type: play
          prompt:
            en: {text: "You owe {amount}.", audio: [owe, {number: amount}, {digits: ref}, {alpha: code}]}
          next: done
        done: {type: hangup}
        """)
    _, step = e.start({"amount": 42, "ref": "0071", "code": "AB"}, datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(step, Play)
    assert step.prompts[0].audio == (AudioFile("owe"), Say("number", "42"), Say("digits", "0071"),
                                     Say("alpha", "AB"))


MENU = """
start:
  type: menu
  prompt: menu
  options: {"1": one, "2": {next: two, label: {en: Two, zh: 二}}}
  retries: 2
  invalid_prompt: bad
  timeout_prompt: quiet
  on_invalid: failed
  on_timeout: silent
one: {type: queue, queue: q1, skills: {billing: 3}, priority_boost: 5}
two: {type: queue, queue: q2}
failed: {type: hangup, reason: invalid}
silent: {type: hangup, reason: timeout}
"""


def test_menu_choice_and_labels() -> None:
    e = flow(MENU, languages="[en, zh]", prompts=PROMPTS)
    state, step = e.start({}, datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(step, Ask) and step.kind == "menu" and step.max_digits == 1
    assert [(c.digits, c.label) for c in step.choices] == [("1", "1"), ("2", "Two")]
    state, step = e.feed(state, Digits("1"))
    assert isinstance(step, Finished)
    assert step.result == QueueResult("q1", {"billing": 3}, 5)
    assert ("start", "digits") in events(step)


def test_menu_replays_with_notices_then_follows_the_exit_of_the_last_failure() -> None:
    e = flow(MENU, languages="[en, zh]", prompts=PROMPTS)
    state, step = e.start({}, datetime(2026, 1, 1, tzinfo=UTC))
    state, step = e.feed(state, Digits("9"))
    assert isinstance(step, Ask) and step.attempt == 2
    assert [p.id for p in step.prompts] == ["bad", "menu"]
    state, step = e.feed(state, NoInput())
    assert isinstance(step, Ask) and step.attempt == 3 and [p.id for p in step.prompts] == ["quiet", "menu"]
    state, step = e.feed(state, NoInput())
    assert isinstance(step, Finished) and step.result == HangupResult("timeout")
    _, done, _ = run(e, [Digits("7"), Digits("8"), Digits("9")])
    assert isinstance(done, Finished) and done.result == HangupResult("invalid")


COLLECT = """
start:
  type: collect
  prompt: {en: "Account?"}
  var: acct
  min_digits: 4
  max_digits: 6
  pattern: "[1-9][0-9]*"
  retries: 1
  next: q
  on_invalid: bad
q: {type: queue, queue: billing}
bad: {type: hangup, reason: bad}
"""


@pytest.mark.parametrize("digits, ok", [("1234", True), ("123456#", True), ("12", False),
                                         ("1234567", False), ("0123", False), ("12a4", False)])
def test_collect_validates_length_pattern_and_terminator(digits: str, ok: bool) -> None:
    e = flow(COLLECT)
    state, step, _ = run(e, [Digits(digits), Digits("x")])
    assert isinstance(step, Finished)
    assert step.result == (QueueResult("billing") if ok else HangupResult("bad"))
    if ok:
        assert state.variables["acct"] == digits.rstrip("#")
        # 'acct' is not a sensitive word: the digits are in the path
        assert ("start", "digits") in events(step)


def test_collect_ask_shape_and_timeout_exit_defaults_to_invalid() -> None:
    e = flow(COLLECT)
    state, step = e.start({}, datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(step, Ask) and (step.kind, step.min_digits, step.max_digits, step.terminator) == (
        "digits", 4, 6, "#")
    _, done, _ = run(e, [NoInput(), NoInput()])
    assert isinstance(done, Finished) and done.result == HangupResult("bad")


def test_collect_sensitive_digits_are_masked() -> None:
    e = flow("""
        start: {type: collect, prompt: {en: "PIN?"}, var: pin, min_digits: 4, max_digits: 4,
                next: q, on_invalid: q}
        q: {type: queue, queue: billing}
        """)
    state, step = e.start({}, datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(step, Ask) and step.sensitive
    state, done = e.feed(state, Digits("4321"))
    assert isinstance(done, Finished)
    assert "4321" not in repr(done.path) and "4321" not in repr(done.variables)
    assert state.variables["pin"] == "4321"  # the flow itself still has it


LOOKUP = """
start:
  type: lookup
  function: balance
  args: {account: "{acct}", fixed: "x-{acct}"}
  save_as: bal
  sensitive: [amount]
  timeout: 1.5
  next: check
  on_error: err
  on_timeout: slow
  on_not_found: none
check:
  type: condition
  branches:
    - {when: {var: bal.amount, gt: 100}, next: rich}
  else: poor
rich: {type: queue, queue: rich}
poor: {type: queue, queue: poor}
err: {type: hangup, reason: error}
slow: {type: hangup, reason: slow}
none: {type: hangup, reason: none}
"""


def test_lookup_call_result_variables_and_masking() -> None:
    e = flow(LOOKUP)
    state, step = e.start({"acct": "77"}, datetime(2026, 1, 1, tzinfo=UTC))
    assert step == CallLookup("start", "balance", {"account": "77", "fixed": "x-77"}, 1.5)
    state, done = e.feed(state, LookupResult({"amount": 250, "owner": {"name": "Ann"}}))
    assert isinstance(done, Finished) and done.result == QueueResult("rich")
    assert state.variables["bal.amount"] == 250 and state.variables["bal.owner.name"] == "Ann"
    (entry,) = [p for p in done.path if p.event == "lookup"]
    assert dict(entry.data) == {"amount": "***", "owner.name": "Ann", }
    assert done.variables["bal.amount"] == "***"


@pytest.mark.parametrize("inp, reason", [
    (LookupFailed("boom"), "error"),
    (LookupFailed("no answer", timed_out=True), "slow"),
    (LookupResult(None), "none"),
])
def test_lookup_failures_follow_their_exits(inp: LookupFailed | LookupResult, reason: str) -> None:
    _, done, _ = run(flow(LOOKUP), [inp], variables={"acct": "1"})
    assert isinstance(done, Finished) and done.result == HangupResult(reason) and done.error is None


def test_condition_operators() -> None:
    e = flow("""
        start:
          type: condition
          branches:
            - {when: {var: customer.type, eq: blacklisted}, next: blocked}
            - {when: {all: [{var: customer.tier, in: [vip, key]}, {not: {var: language, eq: zh}}]}, next: vip}
            - {when: {any: [{var: score, ge: 9}, {var: code, matches: "^A"}]}, next: fast}
            - {when: {var: customer.id, exists: false}, next: unknown}
          else: normal
        blocked: {type: hangup}
        vip: {type: queue, queue: vip}
        fast: {type: queue, queue: fast}
        unknown: {type: queue, queue: unknown}
        normal: {type: queue, queue: normal}
        """)
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def dest(v: dict[str, object]) -> str:
        _, step = e.start(v, now)  # type: ignore[arg-type]
        assert isinstance(step, Finished)
        r = step.result
        return r.queue if isinstance(r, QueueResult) else r.kind

    assert dest({"customer.type": "blacklisted", "customer.tier": "vip"}) == "hangup"
    assert dest({"customer.tier": "vip", "customer.id": 1}) == "vip"
    assert dest({"customer.tier": "key", "customer.id": 1}) == "vip"
    assert dest({"score": "9", "customer.id": 1}) == "fast"  # strings from lookups compare as numbers
    assert dest({"code": "AB1", "customer.id": 1}) == "fast"
    assert dest({}) == "unknown"
    assert dest({"customer.id": 3}) == "normal"


HOURS = """
start:
  type: business_hours
  timezone: Asia/Shanghai
  weekly:
    mon-fri: ["09:00-12:00", "13:00-18:00"]
    sat: "22:00-02:00"
    sun: closed
  holidays: {country: CN, dates: [2026-03-02]}
  on_open: open
  on_closed: closed
  on_holiday: holiday
open: {type: queue, queue: open}
closed: {type: queue, queue: closed}
holiday: {type: queue, queue: holiday}
"""


@pytest.mark.parametrize("utc, expected", [
    (datetime(2026, 3, 3, 2, 0), "open"),       # Tue 10:00 Shanghai
    (datetime(2026, 3, 3, 4, 30), "closed"),    # Tue 12:30: lunch
    (datetime(2026, 3, 3, 10, 0), "closed"),    # Tue 18:00: end is exclusive
    (datetime(2026, 3, 2, 2, 0), "holiday"),    # Mon 2026-03-02 is listed
    (datetime(2026, 10, 1, 2, 0), "holiday"),   # National Day from the holidays package
    (datetime(2026, 3, 7, 15, 0), "open"),      # Sat 23:00
    (datetime(2026, 3, 7, 17, 30), "open"),     # Sun 01:30: Saturday's range crosses midnight
    (datetime(2026, 3, 8, 4, 0), "closed"),     # Sun 12:00
])
def test_business_hours(utc: datetime, expected: str) -> None:
    e = flow(HOURS)
    state, step = e.start({}, utc.replace(tzinfo=UTC))
    assert isinstance(step, Finished) and isinstance(step.result, QueueResult)
    assert step.result.queue == expected
    assert state.variables["start.status"] == expected


def test_set_language_fixed_and_from_variable() -> None:
    e = flow("""
        start: {type: set_language, from_var: customer.language, language: en, next: fixed}
        fixed: {type: play, prompt: hello, next: done}
        done: {type: hangup}
        """, languages="[en, zh]", prompts=PROMPTS)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    _, step = e.start({"customer.language": "ZH", "name": "A"}, now)
    assert isinstance(step, Play) and step.language == "zh" and step.prompts[0].text == "你好 A。"
    _, step = e.start({"customer.language": "fr", "name": "A"}, now)
    assert isinstance(step, Play) and step.language == "en"


def test_terminal_nodes_with_prompts() -> None:
    e = flow("""
        start:
          type: menu
          prompt: menu
          options: {"1": t, "2": v, "3": q}
          on_invalid: h
        t: {type: transfer, number: "+1{ext}", prompt: {en: "Transferring."}}
        v: {type: voicemail_or_ticket, mailbox: sales, reason: closed}
        q: {type: queue, queue: sales, skills: [sales, es], prompt: {en: "Hold on."}}
        h: {type: hangup, prompt: {en: "Bye."}}
        """, prompts='menu: {en: "Press."}\n')
    state, step, steps = run(e, [Digits("1")], variables={"ext": "2025550100"})
    assert isinstance(steps[-2], Play) and steps[-2].prompts[0].text == "Transferring."
    assert isinstance(step, Finished) and step.result == TransferResult("+12025550100")
    _, step, _ = run(e, [Digits("2")])
    assert isinstance(step, Finished) and step.result == VoicemailResult("sales", "closed")
    _, step, _ = run(e, [Digits("3")])
    assert isinstance(step, Finished) and step.result == QueueResult("sales", {"sales": 1, "es": 1})
    assert step.result.describe() == "queue sales with skills es:1, sales:1, priority boost 0"


CALLBACK = """
start:
  type: callback
  number: "{caller_id}"
  queue: callbacks
  confirm_prompt:
    en: {text: "Call {callback.number}? 1 yes, 2 other.", audio: [at, {digits: callback.number}]}
  collect_prompt: {en: "Enter the number."}
  min_digits: 7
  max_digits: 12
  retries: 1
  prompt: {en: "Done."}
  on_invalid: fail
fail: {type: hangup, reason: callback failed}
"""


def test_callback_confirms_the_caller_id() -> None:
    e = flow(CALLBACK)
    state, step = e.start({"caller_id": "+1 (415) 555-0100"}, datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(step, Ask) and step.kind == "confirm"
    assert step.prompts[0].text == "Call 14155550100? 1 yes, 2 other."
    assert Say("digits", "14155550100") in step.prompts[0].audio
    state, step = e.feed(state, Digits("1"))
    assert isinstance(step, Play)
    state, step = e.feed(state, Played())
    assert isinstance(step, Finished) and step.result == CallbackResult("14155550100", "callbacks")
    assert step.result.describe().startswith("callback at number 14155550100")


def test_callback_collects_another_number_or_gives_up() -> None:
    e = flow(CALLBACK)
    _, step, _ = run(e, [Digits("2"), Digits("2025550123#")], variables={"caller_id": "+14155550100"})
    assert isinstance(step, Finished) and step.result == CallbackResult("2025550123", "callbacks")
    # no usable caller ID: straight to collecting; two bad numbers -> on_invalid
    _, step, steps = run(e, [Digits("12"), Digits("123")], variables={"caller_id": "anonymous"})
    assert isinstance(steps[0], Ask) and steps[0].kind == "digits"
    assert isinstance(step, Finished) and step.result == HangupResult("callback failed")


SURVEY = """
start: {type: survey, prompt: {en: "Rate 1 to 5."}, retries: 1, thanks_prompt: {en: "Thanks."}}
"""


def test_survey_scores() -> None:
    e = flow(SURVEY)
    state, step, steps = run(e, [Digits("4")])
    assert isinstance(steps[0], Ask) and [c.digits for c in steps[0].choices] == ["1", "2", "3", "4", "5"]
    assert isinstance(step, Finished) and step.result == SurveyResult(4)
    assert step.result.describe() == "csat=4" and state.variables["csat"] == 4
    _, step, _ = run(e, [Digits("9"), NoInput()])
    assert isinstance(step, Finished) and step.result == SurveyResult(None)
    # hanging up during the thank-you still keeps the score
    state, step = e.start({}, datetime(2026, 1, 1, tzinfo=UTC))
    state, step = e.feed(state, Digits("5"))
    assert isinstance(step, Play)
    _, step = e.feed(state, HungUp())
    assert isinstance(step, Finished) and step.result == SurveyResult(5)


def test_survey_entry_point_is_separate() -> None:
    from tests.ivr.helpers import demo

    e = demo()
    _, step, _ = run(e, [Digits("3")], entry="survey")
    assert isinstance(step, Finished) and step.result == SurveyResult(3)
    assert step.path[0].node == "csat"


def test_hangup_mid_flow_is_abandoned_and_recorded() -> None:
    e = flow(MENU, languages="[en, zh]", prompts=PROMPTS)
    state, _ = e.start({}, datetime(2026, 1, 1, tzinfo=UTC))
    state, step = e.feed(state, HungUp())
    assert isinstance(step, Finished) and step.result == AbandonedResult("start")
    assert events(step)[-2:] == [("start", "hangup"), ("start", "finished")]
    assert e.feed(state, Digits("1"))[1] is step  # finished stays finished
