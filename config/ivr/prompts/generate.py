"""Regenerate the demo flow's sound files with espeak-ng and sox (8 kHz mono GSM, Asterisk-ready).

    apt-get install espeak-ng sox
    .venv/bin/python config/ivr/prompts/generate.py [config/ivr/demo.yaml]

Each prompt's text is spoken in its language (en: en-us, zh: cmn). Audio parts that are not a
whole prompt (a prompt made of several files around a spoken number) take their text from PARTS.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from ivr.loader import load_flow
from ivr.model import AudioPart

VOICES = {"en": "en-us", "zh": "cmn"}
PARTS = {
    ("en", "for_english"): "For English, press 1.",
    ("zh", "for_chinese"): "中文服务请按2。",
    ("en", "balance_is"): "Your balance is",
    ("en", "dollars"): "dollars.",
    ("en", "callback_at"): "We will call you back at",
    ("en", "callback_confirm"): "To confirm, press 1. For another number, press 2.",
    ("zh", "balance_is"): "您的余额是",
    ("zh", "dollars"): "美元。",
    ("zh", "callback_at"): "我们将回电至",
    ("zh", "callback_confirm"): "确认请按1，使用其他号码请按2。",
}


def main() -> int:
    here = Path(__file__).resolve().parent
    flow_file = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parent / "demo.yaml"
    flow = load_flow(flow_file.read_text(encoding="utf-8"), str(flow_file))
    todo: dict[str, tuple[str, str]] = {}
    for pdef in flow.prompts.values():
        for pl in pdef.langs.values():
            files = [p.file for p in pl.audio if isinstance(p, AudioPart)]
            for f in files:
                *_, file_lang, stem = f.split("/")
                text = pl.text if len(pl.audio) == 1 else PARTS[(file_lang, stem)]
                todo[f] = (file_lang, text)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "p.wav"
        for f, (lang, text) in sorted(todo.items()):
            out = here / f"{f}.gsm"
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["espeak-ng", "-v", VOICES[lang], "-s", "150", "-w", str(wav), text], check=True)
            subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", str(out), "gain", "-3"], check=True)
            print(out.relative_to(here))
    return 0


if __name__ == "__main__":
    sys.exit(main())
