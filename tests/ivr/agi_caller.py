"""A scripted caller on Asterisk's side of FastAGI, for driving IVR flows over real TCP.

Reusable: the tests of ``callcenter/ivr_agi.py`` use it, and so can the Asterisk simulator's
tests. It answers like Asterisk 22 (see /work/shared/asterisk-captures/agi-*.txt):

* ``GET DATA file timeout max`` -> the next key press from the script: ``"12#"`` ends on ``#``
  (``200 result=12``); ``"12"`` shorter than max times out (``200 result=12 (timeout)``); longer
  is cut at max (Asterisk stops reading); ``None`` is a timeout (``200 result= (timeout)``);
  :data:`HANG_UP` hangs up (``200 result=-1`` then the ``HANGUP`` line, then 511 for channel
  commands);
* ``STREAM FILE`` -> ``200 result=0 endpos=8000``, or the digit in ``barge`` for that file;
* ``SET VARIABLE`` / ``GET VARIABLE`` keep ``variables``; ``SAY *``, ``ANSWER``... -> ``200 result=0``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from callcenter.asterisk.agi import (
    COMMANDS,
    AgiCommand,
    AgiReply,
    AgiResult,
    DeadChannel,
    InvalidCommand,
    UnknownCommand,
)
from tests.callcenter.asterisk.test_agi_support import FakeAsterisk, make_env

__all__ = ["HANG_UP", "IvrCaller", "drive_call"]

HANG_UP: Final = "<hangup>"


class IvrCaller:
    def __init__(self, keys: Iterable[str | None] = (), *, barge: Mapping[str, str] | None = None,
                 variables: Mapping[str, str] | None = None) -> None:
        self.keys = list(keys)
        self.barge = dict(barge or {})
        self.variables: dict[str, str] = dict(variables or {})
        self.played: list[str] = []  # sound files, in order (STREAM FILE and GET DATA)
        self.said: list[tuple[str, str]] = []  # (SAY command, value)
        self.log: list[str] = []  # every command, as text
        self.hung_up = False
        self.fake: FakeAsterisk | None = None

    def respond(self, cmd: AgiCommand | UnknownCommand) -> AgiReply | None:
        if isinstance(cmd, UnknownCommand):
            return InvalidCommand()
        self.log.append(" ".join((cmd.name, *cmd.args)))
        if self.hung_up and not COMMANDS.get(cmd.name, True):
            return DeadChannel()
        a = cmd.args
        match cmd.name:
            case "GET DATA":
                self.played.append(a[0])
                return self._get_data(int(a[2]) if len(a) > 2 else 1024)
            case "STREAM FILE":
                self.played.append(a[0])
                digit = self.barge.pop(a[0], None)
                if digit is not None and digit in (a[1] if len(a) > 1 else ""):
                    return AgiResult(str(ord(digit)), None, (("endpos", "4000"),))
                return AgiResult("0", None, (("endpos", "8000"),))
            case "SET VARIABLE":
                self.variables[a[0]] = a[1]
                return AgiResult("1")
            case "GET VARIABLE":
                return AgiResult("1", self.variables[a[0]]) if a[0] in self.variables else AgiResult("0")
            case "SAY NUMBER" | "SAY DIGITS" | "SAY ALPHA":
                self.said.append((cmd.name, a[0]))
                return AgiResult("0")
            case "VERBOSE":
                return AgiResult("1")
            case _:
                return AgiResult("0")

    def _get_data(self, max_digits: int) -> AgiReply | None:
        key = self.keys.pop(0) if self.keys else None
        if key == HANG_UP:
            assert self.fake is not None
            self.hung_up = True
            self.fake.reply(AgiResult("-1"))
            self.fake.hangup()
            return None
        if not key:
            return AgiResult("", "timeout")
        if "#" in key:
            return AgiResult(key.split("#", 1)[0][:max_digits])
        if len(key) >= max_digits:
            return AgiResult(key[:max_digits])
        return AgiResult(key, "timeout")


async def drive_call(port: int, caller: IvrCaller, *, script: str = "ivr", query: str = "",
                     callerid: str = "+14155550199") -> IvrCaller:
    """Place one call to the FastAGI server on ``port`` and play it to the end."""
    env = [(k, callerid if k == "agi_callerid" else v) for k, v in make_env(script, query=query, port=port)]
    fake = FakeAsterisk(env, caller.respond)
    caller.fake = fake
    await fake.connect(port)
    await fake.serve()
    return caller
