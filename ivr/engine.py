"""The flow engine: a pure step machine. State + input -> new state + the next step.

::

    engine = Engine(flow)
    state, step = engine.start({"caller_id": "+14155550100"}, now)
    while not isinstance(step, Finished):
        ...perform the step (play, ask, call the lookup)...
        state, step = engine.feed(state, Digits("1"))    # or Played(), NoInput(), LookupResult(...)

The engine performs nothing: the edges (the AGI executor, the chat bot, a TwiML renderer) perform
the steps and feed back what happened. Time is an argument (``now``), never read from a clock.

Guarantees:

* the caller is never dropped: a flow that fails at run time (a missing variable, a lookup that
  fails with no error exit, a loop, an internal error) finishes with "queue to the flow's
  default queue", and the failure is in the recorded path;
* bounded: the digits of one input, the inputs of a call, the automatic moves between two inputs
  and the recorded path are all capped (:class:`Limits`);
* the recorded path masks sensitive values (declared ``sensitive``, or named like balance, pin,
  account...).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from ivr.conditions import ConditionError, evaluate
from ivr.model import (
    BusinessHoursNode,
    CallbackNode,
    CollectNode,
    ConditionNode,
    Flow,
    HangupNode,
    HolidaySpec,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    SayPart,
    SetLanguageNode,
    SurveyNode,
    TransferNode,
    VoicemailOrTicketNode,
    WeeklySchedule,
)
from ivr.schedule import status_at
from ivr.values import MissingVariable, Value, as_text, flatten, is_sensitive, mask, render

__all__ = [
    "AbandonedResult",
    "Ask",
    "AudioFile",
    "CallLookup",
    "CallbackResult",
    "Choice",
    "Digits",
    "Engine",
    "Finished",
    "FlowState",
    "HangupResult",
    "HungUp",
    "Input",
    "Limits",
    "LookupFailed",
    "LookupResult",
    "NoInput",
    "PathEntry",
    "Play",
    "Played",
    "Prompt",
    "QueueResult",
    "Result",
    "Say",
    "Step",
    "SurveyResult",
    "TransferResult",
    "VoicemailResult",
    "path_as_json",
    "validate_digits",
]

# --------------------------------------------------------------------------- what is played


@dataclass(frozen=True, slots=True)
class AudioFile:
    """A sound file, as Asterisk names it (no extension)."""

    file: str


@dataclass(frozen=True, slots=True)
class Say:
    """A value the PBX speaks: ``kind`` is ``digits``, ``number`` or ``alpha``."""

    kind: Literal["digits", "number", "alpha"]
    value: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt in one language: ``text`` for chat and text-to-speech, ``audio`` for a PBX."""

    id: str
    language: str
    text: str
    audio: tuple[AudioFile | Say, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """A menu choice: the digits to press and the label (chat buttons)."""

    digits: str
    label: str


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Play:
    """Play the prompts in order, then feed :class:`Played`."""

    node: str
    prompts: tuple[Prompt, ...]
    language: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Play the prompts (the last one is the question) and read digits; feed :class:`Digits`
    or :class:`NoInput`.

    ``kind``: ``menu`` (one of ``choices``), ``digits`` (free digits, ``min_digits`` to
    ``max_digits``, ended by ``terminator``), ``confirm`` (a yes/no menu) or ``score`` (survey).
    ``sensitive``: do not echo or log the answer."""

    node: str
    prompts: tuple[Prompt, ...]
    language: str
    kind: Literal["menu", "digits", "confirm", "score"]
    choices: tuple[Choice, ...] = ()
    min_digits: int = 1
    max_digits: int = 1
    terminator: str | None = None
    timeout: float = 5.0
    attempt: int = 1
    pattern: str | None = None
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class CallLookup:
    """Call the host's function ``function(**args)`` within ``timeout`` seconds; feed
    :class:`LookupResult` or :class:`LookupFailed`."""

    node: str
    function: str
    args: Mapping[str, str]
    timeout: float


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class QueueResult:
    queue: str
    skills: Mapping[str, int] = field(default_factory=dict)
    priority_boost: int = 0
    fallback: bool = False  # True: the flow failed and the call goes to the default queue
    kind: Literal["queue"] = "queue"

    def describe(self) -> str:
        skills = ", ".join(f"{k}:{v}" for k, v in sorted(self.skills.items())) or "none"
        extra = " (fallback after a flow error)" if self.fallback else ""
        return f"queue {self.queue} with skills {skills}, priority boost {self.priority_boost}{extra}"


@dataclass(frozen=True, slots=True)
class CallbackResult:
    number: str
    queue: str
    kind: Literal["callback"] = "callback"

    def describe(self) -> str:
        return f"callback at number {self.number} (queue {self.queue})"


@dataclass(frozen=True, slots=True)
class TransferResult:
    number: str
    kind: Literal["transfer"] = "transfer"

    def describe(self) -> str:
        return f"transfer to {self.number}"


@dataclass(frozen=True, slots=True)
class VoicemailResult:
    mailbox: str
    reason: str = ""
    kind: Literal["voicemail_or_ticket"] = "voicemail_or_ticket"

    def describe(self) -> str:
        return f"voicemail or ticket in {self.mailbox}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True, slots=True)
class SurveyResult:
    score: int | None  # None: no valid answer
    kind: Literal["survey"] = "survey"

    def describe(self) -> str:
        return f"csat={self.score if self.score is not None else 'none'}"


@dataclass(frozen=True, slots=True)
class HangupResult:
    reason: str = ""
    kind: Literal["hangup"] = "hangup"

    def describe(self) -> str:
        return "hang up" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True, slots=True)
class AbandonedResult:
    """The caller hung up (or the chat user left) at ``node``."""

    node: str
    kind: Literal["abandoned"] = "abandoned"

    def describe(self) -> str:
        return f"abandoned at {self.node}"


Result = (QueueResult | CallbackResult | TransferResult | VoicemailResult | SurveyResult
          | HangupResult | AbandonedResult)


@dataclass(frozen=True, slots=True)
class PathEntry:
    """One thing that happened: ``event`` is ``enter``, ``digits``, ``invalid``, ``no_input``,
    ``lookup``, ``not_found``, ``lookup_failed``, ``branch``, ``hours``, ``language``,
    ``hangup``, ``error``, ``finished`` or ``truncated``. Sensitive values are already masked."""

    node: str
    event: str
    detail: str = ""
    data: tuple[tuple[str, Value], ...] = ()

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"node": self.node, "event": self.event}
        if self.detail:
            out["detail"] = self.detail
        if self.data:
            out["data"] = dict(self.data)
        return out


def path_as_json(path: tuple[PathEntry, ...]) -> list[dict[str, object]]:
    """The path as JSON-ready dicts (for ``interactions.ivr_path`` and the screen pop)."""
    return [e.as_dict() for e in path]


@dataclass(frozen=True, slots=True)
class Finished:
    """The flow is over: ``result`` says where the contact goes. ``error`` is set when the flow
    failed (and ``result`` is then the default queue). ``variables`` are masked."""

    node: str
    result: Result
    path: tuple[PathEntry, ...]
    language: str
    variables: Mapping[str, Value]
    error: str | None = None


Step = Play | Ask | CallLookup | Finished

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Played:
    """The prompts of a :class:`Play` were played (or shown)."""


@dataclass(frozen=True, slots=True)
class Digits:
    """What the caller entered for an :class:`Ask`."""

    digits: str


@dataclass(frozen=True, slots=True)
class NoInput:
    """Nothing entered before the timeout."""


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The function's result: a mapping (nested mappings are flattened), or None for "not found"."""

    values: Mapping[str, object] | None


@dataclass(frozen=True, slots=True)
class LookupFailed:
    """The function raised or did not answer in time (``timed_out``)."""

    error: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class HungUp:
    """The caller left."""


Input = Played | Digits | NoInput | LookupResult | LookupFailed | HungUp


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class Limits:
    max_input_digits: int = 64  # one input longer than this is a flood: invalid, truncated in the path
    max_inputs: int = 200  # inputs per call before the engine gives up (to the default queue)
    max_auto_moves: int = 100  # node moves without input (a loop the checker could not see)
    max_path: int = 400  # entries recorded; then one "truncated" entry
    max_steps: int = 1000


Phase = Literal["play", "ask", "lookup", "final", "cb_confirm", "cb_collect", "done"]


@dataclass(frozen=True, slots=True)
class FlowState:
    """Where a call is in the flow. Immutable: :meth:`Engine.feed` returns a new one."""

    entry: str
    node: str
    phase: Phase
    language: str
    variables: Mapping[str, Value]
    now: datetime
    step: Step
    path: tuple[PathEntry, ...] = ()
    attempts: int = 0
    inputs: int = 0
    steps: int = 0
    sensitive: frozenset[str] = frozenset()
    pending: Result | None = None

    @property
    def finished(self) -> bool:
        return isinstance(self.step, Finished)

    def masked_variables(self) -> dict[str, Value]:
        return {k: mask(k, v, self.sensitive) for k, v in self.variables.items()}


class _Fail(Exception):
    """The flow failed at run time: finish to the default queue."""


_DIGITS_ONLY = re.compile(r"^[0-9*]*$")
_CONFIRM_LABELS = {"en": ("Yes", "Another number"), "zh": ("是", "其他号码"), "es": ("Sí", "Otro número"),
                   "fr": ("Oui", "Un autre numéro"), "de": ("Ja", "Andere Nummer")}


class _Run:
    """A mutable working copy of a FlowState for one call of feed/start."""

    def __init__(self, engine: Engine, s: FlowState) -> None:
        self.e = engine
        self.flow = engine.flow
        self.limits = engine.limits
        self.entry = s.entry
        self.node = s.node
        self.phase: Phase = s.phase
        self.language = s.language
        self.vars: dict[str, Value] = dict(s.variables)
        self.now = s.now
        self.path = list(s.path)
        self.attempts = s.attempts
        self.inputs = s.inputs
        self.steps = s.steps
        self.sensitive = set(s.sensitive)
        self.pending = s.pending
        self.moves = 0
        self.truncated = len(self.path) > self.limits.max_path

    # -- recording

    def rec(self, event: str, detail: str = "", data: tuple[tuple[str, Value], ...] = (),
            node: str | None = None) -> None:
        if len(self.path) >= self.limits.max_path:
            if not self.truncated:
                self.truncated = True
                self.path.append(PathEntry(node or self.node, "truncated", "path limit reached"))
            if event not in ("error", "finished", "hangup"):
                return
        self.path.append(PathEntry(node or self.node, event, detail[:200], data))

    def freeze(self, step: Step) -> FlowState:
        self.vars["language"] = self.language
        return FlowState(self.entry, self.node, self.phase, self.language, self.vars, self.now, step,
                         tuple(self.path), self.attempts, self.inputs, self.steps + 1,
                         frozenset(self.sensitive), self.pending)

    # -- prompts

    def prompt(self, pid: str) -> Prompt:
        pdef = self.flow.prompts.get(pid)
        if pdef is None:
            raise _Fail(f"no prompt {pid!r}")
        lang = self.language if self.language in pdef.langs else self.flow.default_language
        pl = pdef.langs.get(lang) or next(iter(pdef.langs.values()), None)
        if pl is None:
            raise _Fail(f"prompt {pid!r} has no language")
        try:
            text = render(pl.text, self.vars)
            audio: list[AudioFile | Say] = []
            for part in pl.audio:
                if isinstance(part, SayPart):
                    if part.var not in self.vars:
                        raise MissingVariable(part.var)
                    audio.append(Say(part.kind, as_text(self.vars[part.var])))
                else:
                    audio.append(AudioFile(part.file))
        except MissingVariable as exc:
            raise _Fail(f"prompt {pid!r}: {exc}") from None
        return Prompt(pid, lang, text, tuple(audio))

    def prompts(self, *pids: str | None) -> tuple[Prompt, ...]:
        return tuple(self.prompt(p) for p in pids if p)

    # -- finishing

    def finished(self, result: Result, error: str | None = None) -> Finished:
        self.phase = "done"
        self.rec("finished", result.describe())
        return Finished(self.node, result, tuple(self.path), self.language,
                        {k: mask(k, v, self.sensitive) for k, v in self.vars.items()
                         if k != "language"} | {"language": self.language}, error)

    def fail(self, reason: str) -> Finished:
        self.rec("error", reason)
        return self.finished(QueueResult(self.flow.default_queue, {}, 0, fallback=True), reason)

    def finish_with(self, result: Result, prompt: str | None) -> Step:
        if prompt:
            self.pending = result
            self.phase = "final"
            return Play(self.node, self.prompts(prompt), self.language)
        return self.finished(result)

    # -- moving

    def goto(self, target: str) -> Step:
        """Enter ``target`` and run automatic nodes until a step needs the outside world."""
        while True:
            self.moves += 1
            if self.moves > self.limits.max_auto_moves:
                raise _Fail(f"more than {self.limits.max_auto_moves} moves without input (a loop?)")
            node = self.flow.nodes.get(target)
            if node is None:
                raise _Fail(f"no node {target!r}")
            self.node, self.attempts = target, 0
            self.rec("enter")
            nxt = self.enter(node)
            if isinstance(nxt, str):
                target = nxt
                continue
            return nxt

    def enter(self, node: object) -> Step | str:
        """A step to hand out, or the id of the next node (automatic nodes)."""
        if isinstance(node, PlayNode):
            self.phase = "play"
            return Play(node.id, self.prompts(node.prompt), self.language)
        if isinstance(node, MenuNode):
            return self.ask_menu(node, ())
        if isinstance(node, CollectNode):
            return self.ask_collect(node, ())
        if isinstance(node, LookupNode):
            try:
                args = {k: render(v, self.vars) for k, v in node.args.items()}
            except MissingVariable as exc:
                raise _Fail(f"lookup {node.function}: {exc}") from None
            self.phase = "lookup"
            return CallLookup(node.id, node.function, args, node.timeout)
        if isinstance(node, ConditionNode):
            for idx, (cond, target, _line) in enumerate(node.branches):
                try:
                    hit = evaluate(cond, self.vars)
                except ConditionError as exc:
                    raise _Fail(f"condition: {exc}") from None
                if hit:
                    self.rec("branch", f"branch {idx + 1} -> {target}")
                    return target
            self.rec("branch", f"else -> {node.otherwise}")
            return node.otherwise
        if isinstance(node, BusinessHoursNode):
            try:
                tz, weekly, hol = node.timezone, node.weekly, node.holidays
                if node.schedule is not None and node.schedule in self.e.schedules:
                    tz, weekly, hol = self.e.schedules[node.schedule]
                status = status_at(tz, weekly, hol, self.now)
            except (ValueError, KeyError, NotImplementedError) as exc:
                raise _Fail(f"business hours: {exc}") from None
            self.vars[f"{node.id}.status"] = status
            self.rec("hours", status)
            if status == "holiday":
                return node.on_holiday or node.on_closed
            return node.on_open if status == "open" else node.on_closed
        if isinstance(node, SetLanguageNode):
            lang = node.language
            if node.from_var is not None:
                v = self.vars.get(node.from_var)
                cand = as_text(v).lower() if v is not None else ""
                if cand in self.flow.languages:
                    lang = cand
            if lang is not None and lang in self.flow.languages:
                self.language = lang
            self.rec("language", self.language)
            return node.next
        if isinstance(node, QueueNode):
            return self.finish_with(QueueResult(node.queue, dict(node.skills), node.priority_boost),
                                    node.prompt)
        if isinstance(node, TransferNode):
            try:
                number = render(node.number, self.vars).strip()
            except MissingVariable as exc:
                raise _Fail(f"transfer: {exc}") from None
            if not number:
                raise _Fail("transfer: empty number")
            return self.finish_with(TransferResult(number), node.prompt)
        if isinstance(node, VoicemailOrTicketNode):
            return self.finish_with(VoicemailResult(node.mailbox, node.reason), node.prompt)
        if isinstance(node, HangupNode):
            return self.finish_with(HangupResult(node.reason), node.prompt)
        if isinstance(node, SurveyNode):
            return self.ask_survey(node, ())
        if isinstance(node, CallbackNode):
            number = re.sub(r"[^0-9]", "", render(node.number, self.vars, strict=False))
            if node.min_digits <= len(number) <= node.max_digits:
                self.vars["callback.number"] = number
                return self.ask_cb_confirm(node, ())
            return self.ask_cb_collect(node, ())
        raise _Fail(f"unknown node {type(node).__name__}")  # pragma: no cover

    # -- asks

    def ask_menu(self, node: MenuNode, notices: tuple[str | None, ...]) -> Ask:
        self.phase = "ask"
        choices = tuple(Choice(o.digits, o.label.get(self.language) or o.digits) for o in node.options)
        width = max((len(o.digits) for o in node.options), default=1)
        return Ask(node.id, self.prompts(*notices, node.prompt), self.language, "menu", choices,
                   width, width, None, node.timeout, self.attempts + 1)

    def ask_collect(self, node: CollectNode, notices: tuple[str | None, ...]) -> Ask:
        self.phase = "ask"
        return Ask(node.id, self.prompts(*notices, node.prompt), self.language, "digits", (),
                   node.min_digits, node.max_digits, node.terminator, node.timeout, self.attempts + 1,
                   node.pattern, node.sensitive or is_sensitive(node.var, self.flow.sensitive))

    def ask_survey(self, node: SurveyNode, notices: tuple[str | None, ...]) -> Ask:
        self.phase = "ask"
        choices = tuple(Choice(str(i), str(i)) for i in range(node.low, node.high + 1))
        return Ask(node.id, self.prompts(*notices, node.prompt), self.language, "score", choices,
                   1, 1, None, node.timeout, self.attempts + 1)

    def ask_cb_confirm(self, node: CallbackNode, notices: tuple[str | None, ...]) -> Ask:
        self.phase = "cb_confirm"
        yes, other = _CONFIRM_LABELS.get(self.language.split("-")[0], ("1", "2"))
        return Ask(node.id, self.prompts(*notices, node.confirm_prompt), self.language, "confirm",
                   (Choice("1", yes), Choice("2", other)), 1, 1, None, node.timeout, self.attempts + 1)

    def ask_cb_collect(self, node: CallbackNode, notices: tuple[str | None, ...]) -> Ask:
        self.phase = "cb_collect"
        return Ask(node.id, self.prompts(*notices, node.collect_prompt), self.language, "digits", (),
                   node.min_digits, node.max_digits, "#", node.timeout, self.attempts + 1, node.pattern)

    # -- answers

    def answer(self, node: object, inp: Digits | NoInput) -> Step:
        if isinstance(inp, Digits):
            digits = inp.digits
            if len(digits) > self.limits.max_input_digits:
                self.rec("invalid", f"input of {len(digits)} characters (flood)")
                return self.retry(node, "invalid")
        if isinstance(node, MenuNode):
            if isinstance(inp, NoInput):
                self.rec("no_input")
                return self.retry(node, "timeout")
            for o in node.options:
                if inp.digits == o.digits:
                    self.rec("digits", o.digits)
                    return self.goto(o.next)
            self.rec("invalid", _show(inp.digits))
            return self.retry(node, "invalid")
        if isinstance(node, CollectNode):
            if isinstance(inp, NoInput) or inp.digits in ("", node.terminator):
                self.rec("no_input")
                return self.retry(node, "timeout")
            value = validate_digits(inp.digits, node.min_digits, node.max_digits, node.terminator,
                                    node.pattern)
            secret = node.sensitive or is_sensitive(node.var, self.flow.sensitive)
            if value is None:
                self.rec("invalid", "***" if secret else _show(inp.digits))
                return self.retry(node, "invalid")
            self.vars[node.var] = value
            if secret:
                self.sensitive.add(node.var)
            self.rec("digits", "***" if secret else value, ((node.var, "***" if secret else value),))
            return self.goto(node.next)
        if isinstance(node, SurveyNode):
            if isinstance(inp, Digits) and inp.digits.isdigit() and node.low <= int(inp.digits) <= node.high:
                self.rec("digits", inp.digits)
                self.vars["csat"] = int(inp.digits)
                return self.finish_with(SurveyResult(int(inp.digits)), node.thanks_prompt)
            self.rec("no_input" if isinstance(inp, NoInput) else "invalid",
                     "" if isinstance(inp, NoInput) else _show(inp.digits))
            return self.retry(node, "timeout" if isinstance(inp, NoInput) else "invalid")
        if isinstance(node, CallbackNode):
            if self.phase == "cb_confirm":
                if isinstance(inp, Digits) and inp.digits == "1":
                    self.rec("digits", "1")
                    return self.finish_with(CallbackResult(as_text(self.vars.get("callback.number")),
                                                           node.queue), node.prompt)
                if isinstance(inp, Digits) and inp.digits == "2":
                    self.rec("digits", "2")
                    self.attempts = 0
                    return self.ask_cb_collect(node, ())
                self.rec("no_input" if isinstance(inp, NoInput) else "invalid",
                         "" if isinstance(inp, NoInput) else _show(inp.digits))
                return self.retry(node, "invalid")
            if isinstance(inp, NoInput):
                self.rec("no_input")
                return self.retry(node, "timeout")
            value = validate_digits(inp.digits, node.min_digits, node.max_digits, "#", node.pattern)
            if value is None:
                self.rec("invalid", _show(inp.digits))
                return self.retry(node, "invalid")
            self.vars["callback.number"] = value
            self.rec("digits", value)
            return self.finish_with(CallbackResult(value, node.queue), node.prompt)
        raise _Fail(f"an answer for a {type(node).__name__}")  # pragma: no cover

    def retry(self, node: object, why: Literal["invalid", "timeout"]) -> Step:
        self.attempts += 1
        if isinstance(node, MenuNode):
            if self.attempts > node.retries:
                return self.goto(node.on_invalid if why == "invalid" else node.on_timeout)
            notice = node.invalid_prompt if why == "invalid" else node.timeout_prompt
            return self.ask_menu(node, (notice,))
        if isinstance(node, CollectNode):
            if self.attempts > node.retries:
                return self.goto(node.on_invalid if why == "invalid" else node.on_timeout)
            return self.ask_collect(node, (node.invalid_prompt if why == "invalid" else None,))
        if isinstance(node, SurveyNode):
            if self.attempts > node.retries:
                return self.finished(SurveyResult(None))
            return self.ask_survey(node, (node.invalid_prompt if why == "invalid" else None,))
        if isinstance(node, CallbackNode):
            if self.attempts > node.retries:
                return self.goto(node.on_invalid)
            if self.phase == "cb_confirm":
                return self.ask_cb_confirm(node, ())
            return self.ask_cb_collect(node, ())
        raise _Fail("retry on a node that takes no input")  # pragma: no cover


def _show(digits: str) -> str:
    return digits if len(digits) <= 32 else digits[:32] + "..."


def validate_digits(digits: str, lo: int, hi: int, terminator: str | None,
                    pattern: str | None) -> str | None:
    """The digits without the terminator if they are ``lo``..``hi`` long and match ``pattern``."""
    if terminator and digits.endswith(terminator):
        digits = digits[: -len(terminator)]
    if not digits or not _DIGITS_ONLY.match(digits) or not lo <= len(digits) <= hi:
        return None
    if pattern is not None and re.fullmatch(pattern, digits) is None:
        return None
    return digits


class Engine:
    """Steps through one :class:`~ivr.model.Flow`. Stateless itself: one engine serves every call."""

    def __init__(self, flow: Flow, limits: Limits | None = None,
                 schedules: Mapping[str, tuple[str, WeeklySchedule, HolidaySpec]] | None = None) -> None:
        self.flow = flow
        self.limits = limits or Limits()
        # hours by name (timezone, weekly, holidays) that replace a business_hours node's own when
        # the node names them (`schedule:`); the host may update this mapping in place
        self.schedules: Mapping[str, tuple[str, WeeklySchedule, HolidaySpec]] = \
            schedules if schedules is not None else {}

    def start(self, variables: Mapping[str, Value] | None, now: datetime, *, entry: str = "main",
              language: str | None = None) -> tuple[FlowState, Step]:
        """Begin at ``entry`` (``main``, or ``survey`` after the agent hung up). ``variables`` are
        what the host knows (``caller_id``, ``channel``...); ``language`` a preselected one."""
        lang = language if language in self.flow.languages else self.flow.default_language
        vars_: dict[str, Value] = {}
        for k, v in (variables or {}).items():
            vars_[str(k)] = v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
        placeholder = Finished("", HangupResult(), (), lang, {})
        state = FlowState(entry, "", "play", lang, vars_, now, placeholder)
        run = _Run(self, state)
        target = self.flow.entries.get(entry)
        try:
            if target is None:
                raise _Fail(f"no entry {entry!r}")
            step = run.goto(target)
        except _Fail as exc:
            step = run.fail(str(exc))
        except Exception as exc:  # the caller is never dropped, whatever the bug
            step = run.fail(f"internal error: {type(exc).__name__}: {exc}")
        return run.freeze(step), step

    def feed(self, state: FlowState, inp: Input, now: datetime | None = None) -> tuple[FlowState, Step]:
        """What happened with ``state.step``. Returns the new state and the next step."""
        if isinstance(state.step, Finished):
            return state, state.step
        if now is not None:
            state = replace(state, now=now)
        run = _Run(self, state)
        run.inputs += 1
        try:
            step = self._feed(run, state.step, inp)
        except _Fail as exc:
            step = run.fail(str(exc))
        except Exception as exc:
            step = run.fail(f"internal error: {type(exc).__name__}: {exc}")
        return run.freeze(step), step

    def _feed(self, run: _Run, step: Step, inp: Input) -> Step:
        if isinstance(inp, HungUp):
            run.rec("hangup")
            pending = run.pending
            if run.phase == "final" and isinstance(pending, SurveyResult):
                return run.finished(pending)
            return run.finished(AbandonedResult(run.node))
        if run.inputs > run.limits.max_inputs:
            raise _Fail(f"more than {run.limits.max_inputs} inputs")
        if run.steps >= run.limits.max_steps:
            raise _Fail(f"more than {run.limits.max_steps} steps")
        node = self.flow.nodes.get(run.node)
        if node is None:
            raise _Fail(f"no node {run.node!r}")
        if isinstance(step, Play):
            if run.phase == "final" and run.pending is not None:
                return run.finished(run.pending)
            if isinstance(node, PlayNode):
                return run.goto(node.next)
            raise _Fail("Play on a node that does not play")  # pragma: no cover
        if isinstance(step, Ask):
            if isinstance(inp, (Digits, NoInput)):
                return run.answer(node, inp)
            run.rec("ignored", type(inp).__name__)
            return step
        if isinstance(step, CallLookup):
            assert isinstance(node, LookupNode)
            if isinstance(inp, LookupResult):
                return self._lookup_ok(run, node, inp)
            if isinstance(inp, LookupFailed):
                run.rec("lookup_failed", ("timeout: " if inp.timed_out else "") + inp.error)
                target = (node.on_timeout if inp.timed_out and node.on_timeout else None) or node.on_error
                if target is None:
                    raise _Fail(f"lookup {node.function} failed and the node has no on_error: {inp.error}")
                return run.goto(target)
            run.rec("ignored", type(inp).__name__)
            return step
        raise _Fail(f"unexpected step {type(step).__name__}")  # pragma: no cover

    def _lookup_ok(self, run: _Run, node: LookupNode, inp: LookupResult) -> Step:
        declared = node.sensitive | self.flow.sensitive
        if inp.values is None:
            run.vars[f"{node.save_as}.found"] = False
            run.rec("not_found", node.function)
            return run.goto(node.on_not_found or node.next)
        values = flatten(node.save_as, inp.values)
        for name in values:
            if is_sensitive(name, declared):
                run.sensitive.add(name)
        # forget the previous result of this lookup (a retry must not mix two answers)
        prefix = node.save_as + "."
        for k in [k for k in run.vars if k.startswith(prefix)]:
            del run.vars[k]
        run.vars.update(values)
        run.vars[f"{node.save_as}.found"] = True
        shown = tuple((k.removeprefix(prefix), mask(k, v, declared)) for k, v in list(values.items())[:20])
        run.rec("lookup", node.function, shown)
        return run.goto(node.next)
