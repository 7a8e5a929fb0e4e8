"""The chat renderer: the same flow as a bot. Pure: messages out, the user's text in.

Prompts become messages (their ``text`` in the current language); a menu's last message carries
buttons (quick replies) whose values are the menu digits. The user may press a button, type the
digits, type a button's label, or write free text where the flow collects digits ("my account is
12345" -> ``12345``, validated like keyed digits). Lookups are handed to the host, as with every
renderer::

    bot = ChatBot(engine)
    turn = bot.start({"chat_id": "c-1"}, now)
    while turn.lookup:                           # the host calls its function (with a timeout)
        turn = bot.lookup_done(turn.state, LookupResult({...}))
    show(turn.messages)                          # then wait for the user
    turn = bot.receive(turn.state, "2")
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ivr.engine import (
    Ask,
    CallLookup,
    Digits,
    Engine,
    Finished,
    FlowState,
    HungUp,
    Input,
    LookupFailed,
    LookupResult,
    NoInput,
    Play,
    Played,
    Step,
    validate_digits,
)
from ivr.values import Value

__all__ = ["Button", "ChatBot", "ChatMessage", "ChatTurn", "interpret"]

MAX_TEXT: Final = 2000
_NUMBERISH: Final = re.compile(r"[0-9][0-9 \-().]*[0-9]|[0-9]")


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    value: str  # the menu digits


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str
    language: str
    node: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """What the bot says now. Exactly one of: ``lookup`` (the host must call it and feed
    :meth:`ChatBot.lookup_done`), ``finished`` (the flow is over), or waiting for the user
    (``waiting``)."""

    state: FlowState
    messages: tuple[ChatMessage, ...]
    lookup: CallLookup | None = None
    finished: Finished | None = None

    @property
    def waiting(self) -> bool:
        return self.lookup is None and self.finished is None


def _norm(text: str) -> str:
    # NFKC: full-width digits and letters (common with CJK input methods) become ASCII
    return unicodedata.normalize("NFKC", text[:MAX_TEXT]).strip()


def interpret(ask: Ask, text: str) -> Digits:
    """Turn what the user typed into the digits the :class:`Ask` wants. Text that means nothing
    becomes digits the engine will find invalid (``?``), so the flow's retries apply."""
    t = _norm(text)
    if ask.choices:
        for c in ask.choices:
            if t == c.digits:
                return Digits(c.digits)
        low = t.casefold().rstrip(".!。！ ")
        for c in ask.choices:
            if low == c.label.casefold():
                return Digits(c.digits)
        runs = re.findall(r"[0-9]+", t)
        if len(runs) == 1 and any(c.digits == runs[0] for c in ask.choices):
            return Digits(runs[0])
        words = [c for c in ask.choices if len(c.label) >= 2 and not c.label.isdigit()
                 and c.label.casefold() in low]
        if len(words) == 1:
            return Digits(words[0].digits)
        return Digits("?")
    candidates = [re.sub(r"[^0-9]", "", m.group(0)) for m in _NUMBERISH.finditer(t)]
    for cand in candidates:
        if validate_digits(cand, ask.min_digits, ask.max_digits, None, ask.pattern) is not None:
            return Digits(cand)
    if candidates:
        return Digits(candidates[0][:64])
    return Digits("?")


class ChatBot:
    """Drives an :class:`~ivr.engine.Engine` as a chat bot. Stateless; the state is in the turn."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, variables: Mapping[str, Value] | None, now: datetime, *, entry: str = "main",
              language: str | None = None) -> ChatTurn:
        state, step = self.engine.start(variables, now, entry=entry, language=language)
        return self._drain(state, step, [])

    def receive(self, state: FlowState, text: str, now: datetime | None = None) -> ChatTurn:
        """The user's message (or a button's value)."""
        step = state.step
        if not isinstance(step, Ask):
            return self._drain(state, step, [])
        return self._feed(state, interpret(step, text), now)

    def lookup_done(self, state: FlowState, outcome: LookupResult | LookupFailed,
                    now: datetime | None = None) -> ChatTurn:
        return self._feed(state, outcome, now)

    def timeout(self, state: FlowState, now: datetime | None = None) -> ChatTurn:
        """The user said nothing for the step's ``timeout`` (the host's timer)."""
        return self._feed(state, NoInput(), now)

    def leave(self, state: FlowState, now: datetime | None = None) -> ChatTurn:
        """The user closed the chat."""
        return self._feed(state, HungUp(), now)

    def _feed(self, state: FlowState, inp: Input, now: datetime | None) -> ChatTurn:
        state, step = self.engine.feed(state, inp, now)
        return self._drain(state, step, [])

    def _drain(self, state: FlowState, step: Step, out: list[ChatMessage]) -> ChatTurn:
        # Plays need no answer in chat: show them and go on (the engine bounds this loop).
        while isinstance(step, Play):
            out.extend(ChatMessage(p.text, p.language, step.node) for p in step.prompts if p.text)
            state, step = self.engine.feed(state, Played())
        if isinstance(step, Ask):
            buttons = tuple(Button(c.label, c.digits) for c in step.choices)
            for i, p in enumerate(step.prompts):
                last = i == len(step.prompts) - 1
                out.append(ChatMessage(p.text, p.language, step.node, buttons if last else ()))
            return ChatTurn(state, tuple(out))
        if isinstance(step, CallLookup):
            return ChatTurn(state, tuple(out), lookup=step)
        return ChatTurn(state, tuple(out), finished=step)
