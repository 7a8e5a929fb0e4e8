"""The shipped demo flow, through the engine and through the chat renderer."""
from __future__ import annotations

from dataclasses import replace

from ivr import (
    CallbackResult,
    ChatBot,
    ChatTurn,
    Digits,
    Finished,
    HangupResult,
    LookupFailed,
    LookupResult,
    QueueResult,
    SurveyResult,
    VoicemailResult,
    path_as_json,
)
from ivr.chat import interpret
from ivr.engine import Ask, Choice
from tests.ivr.helpers import NIGHT, OPEN, demo, run

CUSTOMERS = {
    "+14155550100": {"id": 1, "name": "Ann", "tier": "vip", "type": "customer"},
    "+14155550111": {"id": 2, "name": "Bob", "tier": "regular", "type": "customer"},
    "+14155550666": {"id": 3, "name": "Eve", "tier": "regular", "type": "blacklisted"},
}


def lookup(turn: ChatTurn, bot: ChatBot) -> ChatTurn:
    """Answer lookups like the host would; the messages of every turn are kept, in order."""
    shown = list(turn.messages)
    while turn.lookup is not None:
        la = turn.lookup
        if la.function == "identify_caller":
            r = LookupResult(CUSTOMERS.get(la.args["phone"]))
        elif la.args.get("account") == "9999":
            r = LookupFailed("timeout", timed_out=True)
        else:
            r = LookupResult({"balance": 1234, "currency": "USD"})
        turn = bot.lookup_done(turn.state, r)
        shown += turn.messages
    return replace(turn, messages=tuple(shown))


def test_engine_vip_fast_lane() -> None:
    e = demo()
    _, step, _ = run(e, [Digits("1"), LookupResult(CUSTOMERS["+14155550100"])], variables={"caller_id": "x"})
    assert isinstance(step, Finished) and step.result == QueueResult("vip", {}, 50)
    assert [p["node"] for p in path_as_json(step.path) if p["event"] == "enter"][-2:] == ["vip_welcome",
                                                                                         "vip_queue"]


def test_engine_blacklisted_and_unknown_after_hours() -> None:
    e = demo()
    _, step, _ = run(e, [Digits("1"), LookupResult(CUSTOMERS["+14155550666"])], variables={"caller_id": ""})
    assert isinstance(step, Finished) and step.result == HangupResult("blacklisted")
    _, step, _ = run(e, [Digits("1"), LookupResult(None), Digits("2")], now=NIGHT,
                     variables={"caller_id": "+1"})
    assert isinstance(step, Finished)
    assert step.result == VoicemailResult("general", "after hours or no choice")


def test_engine_balance_lookup_timeout_goes_to_billing_with_apology() -> None:
    e = demo()
    _, step, steps = run(e, [Digits("1"), LookupFailed("slow", True), Digits("1"), Digits("9999#"),
                             LookupFailed("no answer", timed_out=True)], variables={"caller_id": "+1"})
    assert isinstance(step, Finished) and step.result == QueueResult("billing", {"billing": 3}, 0)
    assert any(getattr(s, "node", "") == "lookup_failed" for s in steps)
    assert "9999" not in repr(step.path)


def test_chat_english_billing_with_free_text_account() -> None:
    bot = ChatBot(demo())
    turn = bot.start({"caller_id": "+14155550111"}, OPEN)
    assert turn.waiting
    (msg,) = turn.messages
    assert [(b.label, b.value) for b in msg.buttons] == [("English", "1"), ("中文", "2")]
    turn = lookup(bot.receive(turn.state, "English"), bot)  # a typed label works
    texts = [m.text for m in turn.messages]
    assert texts[0] == "Welcome to Acme." and texts[-1].startswith("For billing, press 1.")
    assert [b.label for b in turn.messages[-1].buttons] == ["Billing", "Technical support", "Call me back",
                                                            "Agent"]
    turn = bot.receive(turn.state, "billing please")
    assert turn.messages[-1].text.startswith("Please enter your account number")
    turn = lookup(bot.receive(turn.state, "my account is 12345"), bot)
    assert turn.messages[0].text == "Your balance is 1234 USD."
    turn = bot.receive(turn.state, "1")
    assert turn.finished is not None and turn.finished.result == QueueResult("billing", {"billing": 3}, 0)
    assert turn.messages[-1].text == "Please hold for the next available agent."
    assert "12345" not in repr(turn.finished.path) and "1234" not in repr(turn.finished.path)


def test_chat_chinese_callback_after_hours() -> None:
    bot = ChatBot(demo())
    first = bot.start({"caller_id": "+8613800138000"}, NIGHT)
    turn = lookup(bot.receive(first.state, "２"), bot)  # full-width 2
    assert turn.messages[0].text == "欢迎致电 Acme。"
    assert turn.messages[-1].text.startswith("现在是非工作时间")
    turn = bot.receive(turn.state, "预约回电")
    assert turn.messages[-1].text == "我们将回电至 8613800138000。确认请按1，使用其他号码请按2。"
    assert [b.label for b in turn.messages[-1].buttons] == ["是", "其他号码"]
    turn = bot.receive(turn.state, "其他号码")
    turn = bot.receive(turn.state, "请打 138-0013-8001 谢谢")
    assert turn.finished is not None and turn.finished.result == CallbackResult("13800138001", "callbacks")
    assert turn.finished.language == "zh"


def test_chat_invalid_text_retries_then_follows_the_exit() -> None:
    bot = ChatBot(demo())
    turn = lookup(bot.receive(bot.start({"caller_id": ""}, OPEN).state, "1"), bot)
    for _ in range(2):
        turn = bot.receive(turn.state, "what?")
        assert [m.text for m in turn.messages] == ["Sorry, that is not a valid choice.",
                                                   turn.messages[-1].text]
    turn = bot.receive(turn.state, "no idea")
    assert turn.finished is not None and turn.finished.result.kind == "queue"
    assert turn.finished.result == QueueResult("general", {}, 0)


def test_chat_survey_timeout_and_leave() -> None:
    bot = ChatBot(demo())
    turn = bot.start({}, OPEN, entry="survey", language="zh")
    assert turn.messages[0].text.startswith("请为我们的服务打分")
    assert [b.value for b in turn.messages[0].buttons] == ["1", "2", "3", "4", "5"]
    turn = bot.receive(turn.state, "5分")
    assert turn.finished is not None and turn.finished.result == SurveyResult(5)
    assert turn.messages[-1].text == "感谢您的评价。"
    turn = bot.timeout(bot.start({}, OPEN, entry="survey").state)
    turn = bot.leave(turn.state)
    assert turn.finished is not None and turn.finished.result.kind == "abandoned"


def test_interpret() -> None:
    menu = Ask("m", (), "en", "menu", (Choice("1", "Billing"), Choice("2", "Support")))
    assert interpret(menu, " 2 ") == Digits("2")
    assert interpret(menu, "SUPPORT!") == Digits("2")
    assert interpret(menu, "option 1 please") == Digits("1")
    assert interpret(menu, "billing or support") == Digits("?")
    assert interpret(menu, "x" * 100_000) == Digits("?")
    digits = Ask("c", (), "en", "digits", min_digits=4, max_digits=6, pattern="[1-9][0-9]*")
    assert interpret(digits, "it's 12 34 56") == Digits("123456")
    assert interpret(digits, "call 0123 or 4567") == Digits("4567")
    assert interpret(digits, "１２３４") == Digits("1234")
    assert interpret(digits, "no digits") == Digits("?")
    assert len(interpret(digits, "9" * 10_000).digits) <= 64
