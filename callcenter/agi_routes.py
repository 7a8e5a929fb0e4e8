"""The AGI scripts the center answers, by name, for FastAGI and for classic `callcenter agi`.

A script that is not listed gets a fast `FAILURE`, so the dialplan falls back to its plain queue.
"""
from __future__ import annotations

from collections.abc import Mapping

from callcenter.asterisk.fastagi import AgiHandler


def handlers() -> Mapping[str, AgiHandler]:
    # The IVR script ("ivr") and the survey ("survey") are registered here as they land.
    return {}
