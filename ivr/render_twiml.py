"""The TwiML renderer: the IVR engine's steps as Twilio voice verbs, built with the twilio library's
``VoiceResponse`` (never by hand).

* ``Play``  -> ``<Say language=..>`` of the prompt's text, or ``<Play>`` of its sound files when a
  sounds URL is given (spoken values stay ``<Say>``);
* ``Ask``   -> ``<Gather>`` around the prompts, posting the digits (or nothing, on timeout) to the
  action URL;
* ``Finished`` -> ``<Enqueue>``, ``<Dial>``, ``<Record>`` or ``<Hangup>`` (see ``finish``).

Lookups are not TwiML: the host performs them between two webhooks. Pure: no I/O.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from ivr.engine import Ask, AudioFile, Digits, NoInput, Play, Prompt, Say

__all__ = ["LANGUAGES", "TwimlOptions", "add_prompts", "ask", "digits_input", "play", "say_language"]

# The flow's language codes as Twilio's <Say language=...> names them.
LANGUAGES: Mapping[str, str] = {"en": "en-US", "zh": "zh-CN", "es": "es-ES", "fr": "fr-FR", "de": "de-DE",
                                "it": "it-IT", "ja": "ja-JP", "pt": "pt-BR"}
MAX_DIGITS = 64  # the engine's flood limit (ivr.Limits.max_input_digits)
_KEYS = re.compile(r"[^0-9*#]")


@dataclass(frozen=True, slots=True)
class TwimlOptions:
    sounds_base_url: str | None = None  # <Play> <base>/<file><ext>; None: <Say> the prompt's text
    sound_ext: str = ".wav"
    voice: str | None = None  # <Say voice=...>, e.g. "Polly.Joanna"; None: Twilio's default
    languages: Mapping[str, str] = field(default_factory=lambda: dict(LANGUAGES))


def say_language(language: str, opts: TwimlOptions) -> str:
    return opts.languages.get(language, language)


def _say(target: Any, text: str, language: str, opts: TwimlOptions) -> None:
    kw: dict[str, str] = {"language": say_language(language, opts)}
    if opts.voice:
        kw["voice"] = opts.voice
    target.say(text, **kw)


def _spoken(part: Say) -> str:
    if part.kind == "digits":
        return " ".join(c for c in part.value if c.isdigit())
    return part.value


def add_prompts(target: Any, prompts: tuple[Prompt, ...], opts: TwimlOptions) -> None:
    """Append the prompts to a ``VoiceResponse`` or a ``Gather``."""
    for prompt in prompts:
        if opts.sounds_base_url is None:
            if prompt.text:
                _say(target, prompt.text, prompt.language, opts)
            continue
        base = opts.sounds_base_url.rstrip("/")
        for part in prompt.audio:
            if isinstance(part, AudioFile):
                target.play(f"{base}/{part.file}{opts.sound_ext}")
            elif _spoken(part):
                _say(target, _spoken(part), prompt.language, opts)


def play(resp: VoiceResponse, step: Play, opts: TwimlOptions) -> None:
    add_prompts(resp, step.prompts, opts)


def ask(resp: VoiceResponse, step: Ask, action: str, opts: TwimlOptions) -> None:
    """``<Gather>`` the answer to ``step``; Twilio posts ``Digits`` (empty on timeout) to ``action``.

    A menu reads its one digit; free digits end with the terminator (``#``) and may run one digit
    over the maximum, so that over-long input is seen (and refused) rather than cut."""
    if step.kind == "digits":
        num = min(step.max_digits + 1, MAX_DIGITS)
        finish = step.terminator or "#"
    else:
        num = max(1, step.max_digits)
        finish = ""
    gather = resp.gather(input="dtmf", action=action, method="POST", num_digits=num,
                         finish_on_key=finish, timeout=max(1, math.ceil(step.timeout)),
                         action_on_empty_result=True)
    add_prompts(gather, step.prompts, opts)


def digits_input(raw: str | None) -> Digits | NoInput:
    """Twilio's ``Digits`` parameter as the engine's input. Anything but keypad keys is marked
    ``?`` (the engine then refuses it); more than the flood limit is cut one past it, so the
    engine still sees a flood and never a long hostile string."""
    if not raw:
        return NoInput()
    cut = raw[: MAX_DIGITS + 1]
    return Digits(_KEYS.sub("?", cut))
