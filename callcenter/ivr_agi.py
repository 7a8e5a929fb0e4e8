"""The AGI renderer: performs the IVR engine's steps on a FastAGI :class:`AgiSession`.

* ``Play``  -> ``STREAM FILE`` (and ``SAY NUMBER/DIGITS/ALPHA`` for spoken values);
* ``Ask``   -> the prompt's first parts with ``STREAM FILE`` (any digit barges in), its last part
  with ``GET DATA`` (``#`` ends the input, as in Asterisk);
* ``CallLookup`` -> the host's async function, under ``asyncio.wait_for(timeout)``; an exception
  or the timeout is fed back as ``LookupFailed`` and the flow follows its error exit;
* ``Finished`` -> ``SET VARIABLE`` ``ROUTE_KIND``, ``ROUTE_TO``, ``QUEUE``, ``SKILLS``,
  ``PRIORITY``... and return, so the dialplan dials the target (see docs/ivr.md).

A caller who hangs up mid-flow ends the flow cleanly: the engine is fed ``HungUp``, the result is
``abandoned`` (reported through ``on_finish``), and the handler returns normally.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.asterisk.fastagi import AgiChannelError, AgiHandler, AgiHangupError, AgiSession
from ivr.engine import (
    AbandonedResult,
    Ask,
    AudioFile,
    CallbackResult,
    CallLookup,
    Digits,
    Engine,
    Finished,
    HangupResult,
    HungUp,
    Input,
    LookupFailed,
    LookupResult,
    NoInput,
    Play,
    Played,
    Prompt,
    QueueResult,
    Say,
    Step,
    SurveyResult,
    TransferResult,
    VoicemailResult,
)
from ivr.loader import load_flow
from ivr.model import Flow
from ivr.values import Value

__all__ = [
    "AgiIvrOptions",
    "LookupFn",
    "load_flow_file",
    "make_ivr_handler",
    "route_variables",
    "run_flow",
    "session_variables",
]

log = logging.getLogger(__name__)

LookupFn = Callable[..., Awaitable[Mapping[str, Any] | None]]
ESCAPE_DIGITS = "0123456789*#"
MAX_GET_DATA_DIGITS = 33


@dataclass(frozen=True, slots=True)
class AgiIvrOptions:
    """How results become dialplan variables. ``ROUTE_TO`` templates take the result's fields."""

    queue_target: str = "Local/{queue}@cc-queues"
    transfer_target: str = "PJSIP/{number}@trunk"
    voicemail_target: str = "{mailbox}@default"
    silence: str = "silence/1"  # played by GET DATA after a barge-in or a spoken value
    set_channel_language: bool = True  # SET VARIABLE CHANNEL(language) so SAY NUMBER speaks it
    max_path_chars: int = 1000
    route_variables: bool = True  # False: the caller sets the dialplan variables itself (voice.py)


def load_flow_file(path: str | Path, *, functions: Any = None, sounds_dir: str | Path | None = None) -> Flow:
    """Read and check a flow file; :class:`ivr.FlowError` if it has errors (it never goes live).
    ``sounds_dir``: also check that every sound file exists there (any extension)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    audio_exists = None
    if sounds_dir is not None:
        base = Path(sounds_dir)

        def audio_exists(name: str) -> bool:
            return any(base.glob(f"{name}.*"))

    return load_flow(text, str(p), functions=functions, audio_exists=audio_exists)


def session_variables(session: AgiSession) -> dict[str, Value]:
    """What the flow knows at the start: ``caller_id``, ``caller_name``, ``channel``,
    ``uniqueid``, ``dnid``, ``channel_language`` and the AGI URL's query as ``param.<name>``."""
    env = session.env
    out: dict[str, Value] = {
        "caller_id": env.callerid_known or "",
        "caller_name": env.calleridname if env.calleridname not in ("", "unknown") else "",
        "channel": env.channel,
        "uniqueid": env.uniqueid,
        "dnid": env.dnid if env.dnid != "unknown" else "",
        "channel_language": env.language,
    }
    for k, v in session.route.params.items():
        out[f"param.{k}"] = v
    return out


async def _say(session: AgiSession, part: Say, escape: str) -> str | None:
    if part.kind == "number":
        try:
            return await session.say_number(int(float(part.value)), escape)
        except ValueError:
            return await session.say_digits("".join(c for c in part.value if c.isdigit()) or "0", escape)
    if part.kind == "digits":
        digits = "".join(c for c in part.value if c.isdigit())
        return await session.say_digits(digits, escape) if digits else None
    return await session.say_alpha(part.value, escape)


async def _part(session: AgiSession, part: AudioFile | Say, escape: str) -> str | None:
    """Play one part; the digit that interrupted it (when ``escape``), else None.

    A part that fails while the caller is still there (a missing sound file: ``result=-1``) is
    logged and skipped; when the caller has gone, the error goes up."""
    try:
        if isinstance(part, AudioFile):
            return (await session.stream_file(part.file, escape)).digit
        return await _say(session, part, escape)
    except AgiHangupError:
        raise
    except AgiChannelError:
        if session.hung_up:
            raise
        log.warning("IVR: could not play %s on %s", part, session.env.channel)
        return None


async def _play(session: AgiSession, prompts: tuple[Prompt, ...]) -> None:
    for prompt in prompts:
        for part in prompt.audio:
            await _part(session, part, "")


async def _ask(session: AgiSession, step: Ask, silence: str) -> Digits | NoInput:
    parts = [part for prompt in step.prompts for part in prompt.audio]
    timeout_ms = max(1, int(step.timeout * 1000))
    # One digit more than allowed, so that over-long input is seen (and refused), not cut.
    want = step.max_digits if step.kind != "digits" else min(step.max_digits + 1, MAX_GET_DATA_DIGITS)
    last = parts.pop() if parts else AudioFile(silence)
    for part in parts:
        digit = await _part(session, part, ESCAPE_DIGITS)
        if digit is not None:
            return await _rest(session, digit, want, timeout_ms, silence)
    if isinstance(last, Say):
        digit = await _part(session, last, ESCAPE_DIGITS)
        if digit is not None:
            return await _rest(session, digit, want, timeout_ms, silence)
        last = AudioFile(silence)
    try:
        r = await session.get_data(last.file, timeout_ms, want)
    except AgiChannelError:
        if session.hung_up or isinstance(last, AudioFile) and last.file == silence:
            raise
        log.warning("IVR: GET DATA %s failed on %s; retrying with silence", last.file, session.env.channel)
        r = await session.get_data(silence, timeout_ms, want)
    if not r.digits:
        return NoInput()
    return Digits(r.digits)


async def _rest(session: AgiSession, first: str, want: int, timeout_ms: int, silence: str) -> Digits:
    if want <= 1 or first == "#":
        return Digits(first if first != "#" else "")
    r = await session.get_data(silence, timeout_ms, want - 1)
    return Digits(first + r.digits)


async def _lookup(step: CallLookup, lookups: Mapping[str, LookupFn]) -> LookupResult | LookupFailed:
    fn = lookups.get(step.function)
    if fn is None:
        return LookupFailed(f"no lookup function {step.function!r}")
    try:
        values = await asyncio.wait_for(fn(**step.args), timeout=step.timeout)
    except TimeoutError:
        return LookupFailed(f"no answer within {step.timeout:g}s", timed_out=True)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("IVR lookup %s failed: %r", step.function, exc)
        return LookupFailed(f"{type(exc).__name__}: {exc}"[:200])
    if values is not None and not isinstance(values, Mapping):
        return LookupFailed(f"lookup returned {type(values).__name__}, not a mapping")
    return LookupResult(values)


def route_variables(done: Finished, options: AgiIvrOptions | None = None) -> dict[str, str]:
    """The dialplan variables for a finished flow."""
    opts = options or AgiIvrOptions()
    r = done.result
    out: dict[str, str] = {"ROUTE_KIND": r.kind, "ROUTE_TO": "", "IVR_LANGUAGE": done.language}
    if isinstance(r, QueueResult):
        out["QUEUE"] = r.queue
        out["SKILLS"] = ",".join(f"{k}:{v}" for k, v in sorted(r.skills.items()))
        out["PRIORITY"] = str(r.priority_boost)
        out["ROUTE_TO"] = opts.queue_target.format(queue=r.queue)
    elif isinstance(r, TransferResult):
        out["ROUTE_TO"] = opts.transfer_target.format(number=r.number)
    elif isinstance(r, CallbackResult):
        out["CALLBACK_NUMBER"] = r.number
        out["QUEUE"] = r.queue
    elif isinstance(r, VoicemailResult):
        out["ROUTE_TO"] = opts.voicemail_target.format(mailbox=r.mailbox)
        out["MAILBOX"] = r.mailbox
    elif isinstance(r, SurveyResult):
        out["CSAT"] = "" if r.score is None else str(r.score)
        out["SURVEY_SCORE"] = out["CSAT"]
    elif isinstance(r, HangupResult | AbandonedResult):
        pass
    nodes: list[str] = []
    for e in done.path:
        if e.event == "enter" and (not nodes or nodes[-1] != e.node):
            nodes.append(e.node)
    path = ">".join(nodes)
    if len(path) > opts.max_path_chars:
        path = path[: opts.max_path_chars - 3] + "..."
    out["IVR_PATH"] = path
    if done.error:
        out["IVR_ERROR"] = done.error[:200]
    return out


async def run_flow(
    session: AgiSession,
    engine: Engine,
    lookups: Mapping[str, LookupFn],
    *,
    variables: Mapping[str, Value] | None = None,
    entry: str = "main",
    language: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    options: AgiIvrOptions | None = None,
    on_finish: Callable[[AgiSession, Finished], Awaitable[None]] | None = None,
) -> Finished:
    """Run one flow on ``session`` and set the routing variables. Returns the engine's
    :class:`Finished` (``result.kind == "abandoned"`` when the caller hung up).

    ``variables`` default to :func:`session_variables`; ``language`` to the AGI URL's ``lang``
    parameter; ``clock`` gives "now" to the engine (business hours)."""
    opts = options or AgiIvrOptions()
    vars_ = dict(session_variables(session) if variables is None else variables)
    lang = language if language is not None else session.route.params.get("lang")
    state, step = engine.start(vars_, clock(), entry=entry, language=lang)
    channel_lang = session.env.language
    while not isinstance(step, Finished):
        inp: Input
        try:
            if opts.set_channel_language and isinstance(step, Play | Ask) and step.language != channel_lang:
                channel_lang = step.language
                await session.set_variable("CHANNEL(language)", step.language)
            inp = await _perform(session, step, lookups, opts)
        except AgiHangupError:
            inp = HungUp()
        except AgiChannelError:
            if not session.hung_up:
                raise
            inp = HungUp()
        state, step = engine.feed(state, inp, clock())
    if isinstance(step.result, AbandonedResult):
        log.info("IVR %s: caller hung up at %s", session.env.channel, step.result.node)
    if step.error:
        log.warning("IVR %s: flow failed (%s); to the default queue", session.env.channel, step.error)
    if on_finish is not None:
        try:
            await on_finish(session, step)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("IVR on_finish failed on %s", session.env.channel)
    if not session.closed and opts.route_variables:
        try:
            for name, value in route_variables(step, opts).items():
                await session.set_variable(name, value)
        except AgiHangupError:
            log.debug("IVR %s: connection gone before the route variables", session.env.channel)
    return step


async def _perform(session: AgiSession, step: Step, lookups: Mapping[str, LookupFn],
                   opts: AgiIvrOptions) -> Input:
    if isinstance(step, Play):
        await _play(session, step.prompts)
        return Played()
    if isinstance(step, Ask):
        return await _ask(session, step, opts.silence)
    if isinstance(step, CallLookup):
        result = await _lookup(step, lookups)
        if session.hung_up:
            return HungUp()
        return result
    raise AssertionError(step)  # pragma: no cover - Finished ends the loop


def make_ivr_handler(
    engine: Engine,
    lookups: Mapping[str, LookupFn],
    *,
    entry: str | None = None,
    answer: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    options: AgiIvrOptions | None = None,
    on_finish: Callable[[AgiSession, Finished], Awaitable[None]] | None = None,
) -> AgiHandler:
    """A FastAGI handler running the flow: ``FastAgiServer({"ivr": make_ivr_handler(...)})``.

    The entry is ``entry``, else the URL's ``entry`` parameter, else ``main``
    (``AGI(agi://host/ivr?entry=survey)`` runs the survey)."""

    async def handler(session: AgiSession) -> None:
        if answer:
            try:
                await session.answer()
            except AgiHangupError:
                pass
            except AgiChannelError:
                if not session.hung_up:
                    raise
        await run_flow(session, engine, lookups, entry=entry or session.route.params.get("entry", "main"),
                       clock=clock, options=options, on_finish=on_finish)

    return handler

