"""Questions to a caller waiting in the queue, through the REST API: the callback offer that a
routing escalation makes (services/callbacks.py asks it of the call's ``session``: here a
:class:`Prompter`), and the end of a call whose caller took the callback."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twilio.twiml.voice_response import VoiceResponse

from ivr import render_twiml
from ivr.engine import Digits

if TYPE_CHECKING:
    from callcenter.twilio.service import Leg, TwilioVoice

# Host prompts by sound name, as text for <Say> (without twilio.sounds_base_url)
PROMPTS: dict[str, dict[str, str]] = {
    "cc-callback-offer": {"en": "To be called back instead of waiting, press 1.",
                          "zh": "如需回电而无需等待，请按1。"},
    "cc-callback-confirm": {"en": "Thank you. We will call you back.", "zh": "谢谢，我们会尽快回电。"},
}


async def callback_taken(service: TwilioVoice, leg: Leg) -> None:
    """End the call with the confirmation, as the AGI path does (the callback is scheduled)."""
    service.done(leg)
    await service.voice._finish_without_agent(leg.call, "ended", "callback taken instead of waiting")
    resp = VoiceResponse()
    if leg.farewell:
        say_prompt(service, resp, leg.farewell, leg.language)
    resp.hangup()
    try:
        await service.client.calls(leg.sid).update_async(twiml=str(resp))
    except Exception as e:  # noqa: BLE001 - Twilio's own hang-up ends the call anyway
        await service.voice._event(leg.call, "redirect", ok=False, error=f"{type(e).__name__}: {e}"[:300])


def say_prompt(service: TwilioVoice, target: Any, prompt: str, language: str) -> None:
    """A host prompt by sound name (the callback offer): <Play> it from the sounds URL, or
    <Say> its text."""
    opts = service.options.render
    if opts.sounds_base_url:
        target.play(f"{opts.sounds_base_url.rstrip('/')}/{prompt}{opts.sound_ext}")
        return
    text = PROMPTS.get(prompt, {})
    words = text.get(language) or text.get("en") or prompt.replace("-", " ")
    target.say(words, language=render_twiml.say_language(language, opts))


async def ask_caller(service: TwilioVoice, leg: Leg, prompt: str, timeout_ms: int, max_digits: int) -> str:
    """Ask a queued caller one question (the callback offer): the REST API moves the call to
    a <Gather>; its answer comes back here, and the caller goes back into the queue."""
    if leg.mode != "queued" or leg.asking is not None:
        return ""
    service._watch(leg)  # a taken callback resolves the assignment with None
    leg.ask_no += 1
    leg.asking = asyncio.get_running_loop().create_future()
    leg.question = (prompt, timeout_ms, max_digits)
    try:
        if not await service._update(leg, f"/twilio/offer?k={leg.ask_no}"):
            return ""
        wait_s = timeout_ms / 1000 + 30  # Twilio answers after the prompt and the timeout
        return await asyncio.wait_for(asyncio.shield(leg.asking), wait_s)
    except TimeoutError:
        return ""
    finally:
        leg.asking = None


async def offer_question(service: TwilioVoice, leg: Leg, k: int) -> str:
    async def make() -> str:
        resp = VoiceResponse()
        if k != leg.ask_no or leg.asking is None or leg.question is None:
            return await service._current(leg)
        prompt, timeout_ms, max_digits = leg.question
        action = service.url(f"/twilio/offer?k={k}&answer=1")
        gather = resp.gather(input="dtmf", action=action, method="POST", num_digits=max_digits,
                             timeout=max(1, -(-timeout_ms // 1000)), action_on_empty_result=True)
        say_prompt(service, gather, prompt, leg.language)
        return str(resp)

    return await service.once(leg, f"offer:{k}", make)


async def offer_answer(service: TwilioVoice, leg: Leg, k: int, digits: str | None) -> str:
    async def make() -> str:
        if k == leg.ask_no and leg.asking is not None and not leg.asking.done():
            got = render_twiml.digits_input(digits)
            leg.asking.set_result(got.digits if isinstance(got, Digits) else "")
        return await service._current(leg)  # back into the queue (a taken callback then hangs up)

    return await service.once(leg, f"offer-answer:{k}", make)


@dataclass(frozen=True)
class _Answer:
    digits: str


class Prompter:
    """What services/callbacks.py asks of a queued caller's session (``get_data``, ``set_music``,
    ``stream_file``), performed through Twilio."""

    def __init__(self, service: TwilioVoice, leg: Leg) -> None:
        self.service, self.leg = service, leg

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> _Answer:
        return _Answer(await ask_caller(self.service, self.leg, prompt, timeout_ms, max_digits))

    async def set_music(self, on: bool) -> None:
        """The caller is back in <Enqueue> already (hold music from the wait URL)."""

    async def stream_file(self, prompt: str) -> None:
        self.leg.farewell = prompt  # said before the call ends
