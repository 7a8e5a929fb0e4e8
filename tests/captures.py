"""Where the recorded Asterisk traffic lives: ../shared/asterisk-captures beside the checkout."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _find() -> Path:
    for cand in (os.environ.get("CC_CAPTURES_DIR"), ROOT.parent / "shared" / "asterisk-captures",
                 "/work/shared/asterisk-captures"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    raise RuntimeError("Asterisk captures missing: set CC_CAPTURES_DIR or put shared/ beside the repo")


CAPTURES = _find()
