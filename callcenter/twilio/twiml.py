"""TwiML for the queue and the agent leg (the IVR's own steps: ivr/render_twiml.py)."""
from __future__ import annotations

from twilio.twiml.voice_response import Dial, VoiceResponse

from ivr.render_twiml import TwimlOptions, say_language

AGENT_EVENTS = "initiated ringing answered completed"
_POSITION = {"en": "You are number {n} in the queue.", "zh": "您前面排在第{n}位。",
             "es": "Usted es el número {n} en la cola.", "fr": "Vous êtes le numéro {n} dans la file.",
             "de": "Sie sind Nummer {n} in der Warteschlange."}


def enqueue(resp: VoiceResponse, queue: str, wait_url: str, action: str) -> None:
    """Put the caller in the Twilio queue named like the routing queue."""
    resp.enqueue(queue, action=action, method="POST", wait_url=wait_url, wait_url_method="POST")


def hold(resp: VoiceResponse, position: int | None, language: str, music_url: str,
         opts: TwimlOptions) -> None:
    """The wait URL's answer: the caller's position, then hold music (Twilio asks again after)."""
    if position is not None:
        text = _POSITION.get(language, _POSITION["en"]).format(n=position)
        kw = {"voice": opts.voice} if opts.voice else {}
        resp.say(text, language=say_language(language, opts), **kw)
    resp.play(music_url)


def dial_target(extension: str | None, sip_domain: str | None) -> tuple[str, str] | None:
    """An agent's configured number or SIP address as (noun, address): ``+1415...`` is a number,
    ``sip:...`` a SIP URI, ``client:name`` a Twilio client; a bare extension becomes
    ``sip:<ext>@<sip_domain>``. None when there is nothing Twilio can dial."""
    ext = (extension or "").strip()
    if not ext:
        return None
    if ext.startswith("+") and ext[1:].isdigit():
        return "number", ext
    if ext.startswith(("sip:", "sips:")):
        return "sip", ext
    if ext.startswith("client:"):
        return "client", ext[len("client:"):]
    if sip_domain and "/" not in ext and "@" not in ext:
        return "sip", f"sip:{ext}@{sip_domain}"
    return None


def dial(resp: VoiceResponse, target: tuple[str, str], action: str, status_url: str, timeout: int) -> None:
    """Connect the caller to the agent; the agent leg's progress goes to ``status_url``."""
    d: Dial = resp.dial(action=action, method="POST", timeout=timeout, answer_on_bridge=True)
    noun, address = target
    kw = {"status_callback": status_url, "status_callback_event": AGENT_EVENTS,
          "status_callback_method": "POST"}
    if noun == "number":
        d.number(address, **kw)
    elif noun == "sip":
        d.sip(address, **kw)
    else:
        d.client(address, **kw)
