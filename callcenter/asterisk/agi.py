"""Sans-I/O AGI codec: bytes in, messages out; messages in, bytes out.

Two protocol objects, in the style of h11 (``receive_data`` / ``next_event`` / ``send``):

* :class:`AgiConnection` is the *script* side (our FastAGI server, or a classic AGI process):
  it receives the ``agi_*`` environment block and the replies, and encodes commands.
* :class:`AsteriskConnection` is the *Asterisk* side (the simulator, the tests, the benchmark's
  load generator): it receives commands and encodes the environment, replies and ``HANGUP``.

Wire facts (checked against the Asterisk 22 captures in ``asterisk-captures/`` and ``res_agi.c``):

* Lines end with LF. The environment is ``key: value`` lines ending on a blank line; script
  arguments arrive as ``agi_arg_1`` .. ``agi_arg_N``; the query string of ``agi://host/ivr?x=y``
  stays in ``agi_network_script``.
* Replies: ``200 result=N [(data)] [key=value ...]`` (``200 result= (timeout)`` on a GET DATA
  timeout), ``510 Invalid or unknown command``, ``511 Command Not Permitted on a dead channel or
  intercept routine``, ``520 Invalid command syntax.  Proper usage not available.`` or the
  multi-line ``520-Invalid command syntax.  Proper usage follows:`` .. ``520 End of proper usage.``
  (the usage lines in between are free text and may look like replies).
* ``HANGUP`` is an unsolicited line: it may arrive while a command is pending (before that
  command's reply) or while idle.
* Asterisk splits a command into words like ``parse_args()`` in res_agi.c (double quotes group,
  backslash escapes the next character) and reads at most ``AGI_BUF_LEN - 1`` = 2047 bytes per
  line; MAX_ARGS is 128 (127 words).
* A line starting ``failure`` (any case) sent by the script ends the AGI with
  ``AGISTATUS=FAILURE`` and the dialplan continues: the fast way to refuse a session.

Errors: :class:`RemoteProtocolError` means the peer broke the protocol (the connection is then
unusable); :class:`LocalProtocolError` means we misused the API (nothing was sent).
"""
from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "AGI_BUF_LEN",
    "COMMANDS",
    "MAX_ARGS",
    "NEED_DATA",
    "AgiCommand",
    "AgiConnection",
    "AgiEnv",
    "AgiError",
    "AgiReply",
    "AgiRequest",
    "AgiResult",
    "AsteriskConnection",
    "Closed",
    "DeadChannel",
    "Hangup",
    "InvalidCommand",
    "LocalProtocolError",
    "NeedData",
    "OtherReply",
    "RemoteProtocolError",
    "ScriptFailure",
    "UnknownCommand",
    "UsageError",
    "encode_command",
    "encode_reply",
    "parse_args",
    "parse_reply_line",
]

ENCODING: Final = "utf-8"
ERRORS: Final = "surrogateescape"  # bytes that are not UTF-8 survive a decode/encode round trip

AGI_BUF_LEN: Final = 2048  # res_agi.c: a command line is read with fgets(buf, AGI_BUF_LEN)
MAX_ARGS: Final = 128  # res_agi.c: argv[MAX_ARGS], at most MAX_ARGS - 1 words

# Every command of res_agi.c with its "runs on a dead channel" flag (the last field of its entry
# in commands[]). The order is Asterisk's: find_command() returns the first match.
COMMANDS: Final[Mapping[str, bool]] = {
    "ANSWER": False,
    "ASYNCAGI BREAK": True,
    "CHANNEL STATUS": False,
    "DATABASE DEL": True,
    "DATABASE DELTREE": True,
    "DATABASE GET": True,
    "DATABASE PUT": True,
    "EXEC": True,
    "GET DATA": False,
    "GET FULL VARIABLE": True,
    "GET OPTION": False,
    "GET VARIABLE": True,
    "HANGUP": False,
    "NOOP": True,
    "RECEIVE CHAR": False,
    "RECEIVE TEXT": False,
    "RECORD FILE": False,
    "SAY ALPHA": False,
    "SAY DIGITS": False,
    "SAY NUMBER": False,
    "SAY PHONETIC": False,
    "SAY DATE": False,
    "SAY TIME": False,
    "SAY DATETIME": False,
    "SEND IMAGE": False,
    "SEND TEXT": False,
    "SET AUTOHANGUP": False,
    "SET CALLERID": False,
    "SET CONTEXT": False,
    "SET EXTENSION": False,
    "SET MUSIC": False,
    "SET PRIORITY": False,
    "SET VARIABLE": True,
    "STREAM FILE": False,
    "CONTROL STREAM FILE": False,
    "TDD MODE": False,
    "VERBOSE": True,
    "WAIT FOR DIGIT": False,
    "SPEECH CREATE": False,
    "SPEECH SET": False,
    "SPEECH DESTROY": True,
    "SPEECH LOAD GRAMMAR": False,
    "SPEECH UNLOAD GRAMMAR": True,
    "SPEECH ACTIVATE GRAMMAR": False,
    "SPEECH DEACTIVATE GRAMMAR": False,
    "SPEECH RECOGNIZE": False,
    "GOSUB": False,
}
_COMMAND_WORDS: Final = tuple((name, tuple(name.split())) for name in COMMANDS)

DEFAULT_MAX_LINE: Final = 64 * 1024
DEFAULT_MAX_ENV_LINES: Final = 1024
DEFAULT_MAX_BLOCK_LINES: Final = 1024


# --------------------------------------------------------------------------- errors


class AgiError(Exception):
    """Base of the codec's errors."""


class RemoteProtocolError(AgiError):
    """The peer broke the protocol (malformed or oversized data, a reply nobody asked for)."""


class LocalProtocolError(AgiError):
    """We misused the protocol (bad argument, a command before the environment, ...)."""


# --------------------------------------------------------------------------- events


class NeedData(enum.Enum):
    """Sentinel type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The parsed ``agi_request`` / ``agi_network_script``.

    ``agi://127.0.0.1:4573/ivr?lang=en`` gives ``script="ivr"``, ``query_string="lang=en"``,
    ``query=(("lang", "en"),)``. For classic AGI (no URL) ``script`` is the path as given.
    """

    url: str
    scheme: str
    host: str
    port: int | None
    script: str
    query_string: str
    query: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, url: str, network_script: str | None = None) -> AgiRequest:
        parts = urlsplit(url) if "://" in url else None
        if parts is not None:
            path, query_string = parts.path, parts.query
            scheme, host = parts.scheme, parts.hostname or ""
            try:
                port = parts.port
            except ValueError:
                port = None
        else:
            path, _, query_string = url.partition("?")
            scheme, host, port = "", "", None
        if network_script is not None:  # Asterisk's own split of the URL wins
            path, _, query_string = network_script.partition("?")
        script = path.lstrip("/") if parts is not None or network_script is not None else path
        return cls(
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            script=script,
            query_string=query_string,
            query=tuple(parse_qsl(query_string, keep_blank_values=True)),
        )

    @property
    def params(self) -> dict[str, str]:
        """The query as a dict (the last of repeated keys wins)."""
        return dict(self.query)


def _int(value: str | None, default: int = 0) -> int:
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class AgiEnv:
    """The ``agi_*`` environment block, typed. ``pairs`` keeps every line in wire order."""

    pairs: tuple[tuple[str, str], ...]
    network: bool
    network_script: str
    request: AgiRequest
    channel: str
    language: str
    type: str
    uniqueid: str
    version: str
    callerid: str
    calleridname: str
    callingpres: int
    callingani2: int
    callington: int
    callingtns: int
    dnid: str
    rdnis: str
    context: str
    extension: str
    priority: int
    enhanced: str
    accountcode: str
    threadid: str
    args: tuple[str, ...]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> AgiEnv:
        """Build from ``(key, value)`` pairs (from the wire, or from pyst2's ``AGI.env``)."""
        items = tuple(pairs)
        env = dict(items)
        g = env.get
        numbered: list[tuple[int, str]] = []
        for key, value in items:
            if key.startswith("agi_arg_") and key[8:].isdigit():
                numbered.append((int(key[8:]), value))
        numbered.sort()
        network_script = g("agi_network_script")
        return cls(
            pairs=items,
            network=g("agi_network", "").lower() == "yes",
            network_script=network_script or "",
            request=AgiRequest.parse(g("agi_request", ""), network_script),
            channel=g("agi_channel", ""),
            language=g("agi_language", ""),
            type=g("agi_type", ""),
            uniqueid=g("agi_uniqueid", ""),
            version=g("agi_version", ""),
            callerid=g("agi_callerid", ""),
            calleridname=g("agi_calleridname", ""),
            callingpres=_int(g("agi_callingpres")),
            callingani2=_int(g("agi_callingani2")),
            callington=_int(g("agi_callington")),
            callingtns=_int(g("agi_callingtns")),
            dnid=g("agi_dnid", ""),
            rdnis=g("agi_rdnis", ""),
            context=g("agi_context", ""),
            extension=g("agi_extension", ""),
            priority=_int(g("agi_priority")),
            enhanced=g("agi_enhanced", ""),
            accountcode=g("agi_accountcode", ""),
            threadid=g("agi_threadid", ""),
            args=tuple(value for _, value in numbered),
        )

    def get(self, key: str, default: str | None = None) -> str | None:
        """A raw value by its wire name (``agi_channel``), unknown keys included."""
        for k, v in self.pairs:
            if k == key:
                return v
        return default

    @property
    def script(self) -> str:
        return self.request.script

    @property
    def callerid_known(self) -> str | None:
        """The caller ID number, or None when Asterisk says ``unknown`` or nothing."""
        return None if self.callerid in ("", "unknown") else self.callerid


@dataclass(frozen=True, slots=True)
class AgiResult:
    """``200 result=<result>[ (<data>)][ key=value ...]``. ``result`` stays a string: a GET DATA
    timeout sends ``result=`` (empty) or the digits read before the timeout."""

    result: str
    data: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    tail: str = ""  # whatever did not fit the pattern above (e.g. SPEECH RECOGNIZE results)
    code: int = field(default=200, init=False)

    @property
    def value(self) -> int | None:
        """``result`` as an int, or None when it is not a number (e.g. empty)."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def endpos(self) -> int | None:
        for k, v in self.extra:
            if k == "endpos":
                try:
                    return int(v)
                except ValueError:
                    return None
        return None

    def get(self, key: str) -> str | None:
        for k, v in self.extra:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class InvalidCommand:
    """``510 Invalid or unknown command``."""

    text: str = "Invalid or unknown command"
    code: int = field(default=510, init=False)


@dataclass(frozen=True, slots=True)
class DeadChannel:
    """``511 Command Not Permitted on a dead channel or intercept routine``."""

    text: str = "Command Not Permitted on a dead channel or intercept routine"
    code: int = field(default=511, init=False)


@dataclass(frozen=True, slots=True)
class UsageError:
    """520: bad arguments. ``usage`` holds the lines of a multi-line block (empty for the
    single-line form ``520 Invalid command syntax.  Proper usage not available.``)."""

    text: str = "Invalid command syntax.  Proper usage follows:"
    usage: tuple[str, ...] = ()
    end: str = "End of proper usage."
    multiline: bool = True
    code: int = field(default=520, init=False)


@dataclass(frozen=True, slots=True)
class OtherReply:
    """Any other ``NNN text`` reply (Asterisk sends none we know of, but it is well formed)."""

    code: int
    text: str
    lines: tuple[str, ...] = ()  # continuation lines of an ``NNN-`` block


AgiReply = AgiResult | InvalidCommand | DeadChannel | UsageError | OtherReply


@dataclass(frozen=True, slots=True)
class Hangup:
    """The unsolicited ``HANGUP`` line: the channel hung up (Asterisk keeps the socket open)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed its side (EOF)."""


@dataclass(frozen=True, slots=True)
class AgiCommand:
    """A command: ``name`` is one or more words (``"GET VARIABLE"``), ``args`` its arguments."""

    name: str
    args: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, *args: object) -> AgiCommand:
        return cls(name, tuple(_arg_str(a) for a in args))

    @property
    def runs_dead(self) -> bool:
        """Whether Asterisk accepts this command on a dead channel (unknown commands: False)."""
        return COMMANDS.get(" ".join(self.name.upper().split()), False)


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command line Asterisk would answer with 510 (decoded on the Asterisk side)."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScriptFailure:
    """The script sent a line starting ``failure``: Asterisk ends the AGI, AGISTATUS=FAILURE."""

    line: str


ScriptEvent = (
    AgiEnv | AgiResult | InvalidCommand | DeadChannel | UsageError | OtherReply | Hangup | Closed
)
AsteriskEvent = AgiCommand | UnknownCommand | ScriptFailure | Closed


# --------------------------------------------------------------------------- encoding helpers


def _arg_str(value: object) -> str:
    if isinstance(value, bool):
        raise LocalProtocolError("boolean AGI argument; pass a string or a number")
    if isinstance(value, str | int | float):
        return str(value)
    raise LocalProtocolError(f"AGI arguments are strings or numbers, not {type(value).__name__}")


_NEEDS_QUOTES = re.compile(r'[\s"\\]')
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_NAME_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _quote(arg: str) -> str:
    if arg and not _NEEDS_QUOTES.search(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(command: AgiCommand) -> bytes:
    """One command line. Raises :class:`LocalProtocolError` for what Asterisk cannot receive
    intact: newlines or NUL in an argument, more than 127 words, a line over 2047 bytes."""
    words = command.name.split(" ")
    if not words or not all(_NAME_WORD.match(w) for w in words):
        raise LocalProtocolError(f"bad AGI command name {command.name!r}")
    parts = list(words)
    for arg in command.args:
        if not isinstance(arg, str):
            raise LocalProtocolError(f"AGI argument {arg!r} is not a string")
        if _FORBIDDEN.search(arg):
            raise LocalProtocolError(f"AGI argument {arg!r} contains a newline or NUL")
        parts.append(_quote(arg))
    if len(parts) > MAX_ARGS - 1:
        raise LocalProtocolError(f"{len(parts)} words; Asterisk keeps at most {MAX_ARGS - 1}")
    data = (" ".join(parts) + "\n").encode(ENCODING, ERRORS)
    if len(data) > AGI_BUF_LEN - 1:
        raise LocalProtocolError(
            f"command line of {len(data)} bytes; Asterisk reads at most {AGI_BUF_LEN - 1}"
        )
    return data


def parse_args(line: str) -> list[str]:
    """Split a command line into words exactly like ``parse_args()`` in res_agi.c."""
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace and len(argv) < MAX_ARGS - 1:
                cur = []
                argv.append("")  # placeholder, filled when the word ends
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                argv[-1] = "".join(cur)
                cur = None
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        # "normal"
        if whitespace:
            if len(argv) >= MAX_ARGS - 1:
                continue  # "Too many arguments, truncating": the rest of the line is dropped
            cur = []
            argv.append("")
            whitespace = False
        if cur is not None:
            cur.append(ch)
        escaped = False
    if cur is not None:
        argv[-1] = "".join(cur)
    return argv


def _find_command(words: list[str]) -> AgiCommand | UnknownCommand:
    """find_command(argv, 0) of res_agi.c: the first table entry whose words all match."""
    for name, cmd_words in _COMMAND_WORDS:
        n = len(cmd_words)
        if len(words) >= n and all(a.upper() == b for a, b in zip(words, cmd_words, strict=False)):
            return AgiCommand(name, tuple(words[n:]))
    return UnknownCommand(tuple(words))


def decode_command(line: str) -> AgiCommand | UnknownCommand:
    """Decode one command line (without its LF), as Asterisk would."""
    return _find_command(parse_args(line))


_RESULT_RE = re.compile(r"result=(?P<result>[^ ]*)(?P<rest>.*)\Z", re.S)
_DATA_RE = re.compile(r" \((?P<data>.*)\)(?P<kv>(?: [^\s=]+=[^\s]*)*)\Z", re.S)
_KV_ONLY_RE = re.compile(r"(?P<kv>(?: [^\s=]+=[^\s]*)*)\Z", re.S)
_KV_RE = re.compile(r" ([^\s=]+)=([^\s]*)")
_CODE_RE = re.compile(r"(\d{3})([ -])(.*)\Z", re.S)


def _parse_200(text: str) -> AgiResult:
    m = _RESULT_RE.match(text)
    if m is None:
        raise RemoteProtocolError(f"200 reply without result=: {text!r}")
    result, rest = m["result"], m["rest"]
    if not rest:
        return AgiResult(result)
    dm = _DATA_RE.match(rest)
    if dm is not None:
        return AgiResult(result, dm["data"], tuple(_KV_RE.findall(dm["kv"])))
    km = _KV_ONLY_RE.match(rest)
    if km is not None:
        return AgiResult(result, None, tuple(_KV_RE.findall(km["kv"])))
    return AgiResult(result, tail=rest)


def parse_reply_line(line: str) -> AgiReply:
    """Parse a single-line reply (``200 ...``, ``510 ...``, ``511 ...``, ``520 ...``)."""
    m = _CODE_RE.match(line)
    if m is None or m[2] != " ":
        raise RemoteProtocolError(f"not an AGI reply: {line[:200]!r}")
    code, text = int(m[1]), m[3]
    if code == 200:
        return _parse_200(text)
    if code == 510:
        return InvalidCommand(text)
    if code == 511:
        return DeadChannel(text)
    if code == 520:
        return UsageError(text=text, usage=(), end="", multiline=False)
    return OtherReply(code, text)


def encode_reply(reply: AgiReply) -> bytes:
    """The bytes Asterisk sends for ``reply``."""
    if isinstance(reply, AgiResult):
        out = "200 result=" + reply.result
        if reply.data is not None:
            out += f" ({reply.data})"
        out += "".join(f" {k}={v}" for k, v in reply.extra) + reply.tail
        lines = [out]
    elif isinstance(reply, UsageError):
        if reply.multiline:
            lines = [f"520-{reply.text}", *reply.usage, f"520 {reply.end}"]
        else:
            lines = [f"520 {reply.text}"]
    elif isinstance(reply, OtherReply):
        if reply.lines:
            lines = [f"{reply.code}-{reply.text}", *reply.lines[:-1], f"{reply.code} {reply.lines[-1]}"]
        else:
            lines = [f"{reply.code} {reply.text}"]
    else:
        lines = [f"{reply.code} {reply.text}"]
    for ln in lines:
        if _FORBIDDEN.search(ln):
            raise LocalProtocolError(f"reply line {ln!r} contains a newline or NUL")
    return ("\n".join(lines) + "\n").encode(ENCODING, ERRORS)


def encode_env(pairs: Iterable[tuple[str, str]]) -> bytes:
    out = []
    for key, value in pairs:
        if not key or _FORBIDDEN.search(key) or ":" in key or _FORBIDDEN.search(value):
            raise LocalProtocolError(f"bad environment line {key!r}: {value!r}")
        out.append(f"{key}: {value}\n")
    if not out:
        raise LocalProtocolError("an empty environment cannot be sent")
    out.append("\n")
    return "".join(out).encode(ENCODING, ERRORS)


# --------------------------------------------------------------------------- line buffer


class _Lines:
    """Frames LF-terminated lines while the data is still bytes, with a size limit."""

    __slots__ = ("_buf", "_max", "eof")

    def __init__(self, max_line: int) -> None:
        self._buf = bytearray()
        self._max = max_line
        self.eof = False

    def feed(self, data: bytes) -> None:
        if self.eof:
            raise LocalProtocolError("receive_data() after EOF")
        if data:
            self._buf += data
        else:
            self.eof = True

    def take(self) -> str | None:
        i = self._buf.find(b"\n")
        if i < 0:
            if len(self._buf) > self._max:
                raise RemoteProtocolError(f"line longer than {self._max} bytes")
            return None
        if i > self._max:
            raise RemoteProtocolError(f"line longer than {self._max} bytes")
        raw = bytes(self._buf[:i])
        del self._buf[: i + 1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return raw.decode(ENCODING, ERRORS)

    @property
    def pending(self) -> bool:
        return bool(self._buf)


class _State(enum.Enum):
    ENV = "ENV"
    READY = "READY"
    CLOSED = "CLOSED"
    ERROR = "ERROR"


# --------------------------------------------------------------------------- script side


class AgiConnection:
    """The script's side of one AGI conversation (our FastAGI session or classic AGI process).

    Feed bytes with :meth:`receive_data` (``b""`` means EOF), pull events with
    :meth:`next_event`: first an :class:`AgiEnv`, then one reply per command sent, with
    :class:`Hangup` possibly in between, and :class:`Closed` at EOF. :meth:`send` encodes a
    command; :meth:`send_failure` encodes the ``FAILURE`` line that refuses the session.
    """

    def __init__(
        self,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_env_lines: int = DEFAULT_MAX_ENV_LINES,
        max_block_lines: int = DEFAULT_MAX_BLOCK_LINES,
        env: AgiEnv | None = None,
    ) -> None:
        """``env``: the environment was already read by someone else (classic AGI via pyst2);
        the connection then starts ready for commands."""
        self._lines = _Lines(max_line)
        self._max_env_lines = max_env_lines
        self._max_block_lines = max_block_lines
        self._state = _State.ENV
        self._env_pairs: list[tuple[str, str]] = []
        self._block: tuple[int, str, list[str]] | None = None  # code, first text, lines
        self._pending = 0
        self._error: RemoteProtocolError | None = None
        self._we_are_done = False
        self.env: AgiEnv | None = env
        self.hung_up = False
        if env is not None:
            self._state = _State.READY

    @property
    def pending(self) -> int:
        """Commands sent whose reply has not been returned yet."""
        return self._pending

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    def receive_data(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_event(self) -> ScriptEvent | NeedData:
        if self._error is not None:
            raise RemoteProtocolError(*self._error.args)
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self._error = exc
            self._state = _State.ERROR
            raise

    def _eof_or_need(self, where: str) -> Closed | NeedData:
        if not self._lines.eof:
            return NEED_DATA
        if self._lines.pending:
            raise RemoteProtocolError(f"EOF inside a line ({where})")
        if self._block is not None:
            raise RemoteProtocolError("EOF inside a multi-line reply")
        if self._state is _State.ENV and self._env_pairs:
            raise RemoteProtocolError("EOF inside the environment block")
        self._state = _State.CLOSED
        return Closed()

    def _next(self) -> ScriptEvent | NeedData:
        state = self._state
        if state is _State.CLOSED:
            return Closed()
        if state is _State.ENV:
            while True:
                line = self._lines.take()
                if line is None:
                    return self._eof_or_need("environment")
                if line == "":
                    if not self._env_pairs:
                        raise RemoteProtocolError("empty environment block")
                    self.env = AgiEnv.from_pairs(self._env_pairs)
                    self._env_pairs = []
                    self._state = _State.READY
                    return self.env
                key, sep, value = line.partition(":")
                if not sep or not key or not key.replace("_", "").isalnum() or not key.isascii():
                    raise RemoteProtocolError(f"bad environment line {line[:200]!r}")
                if len(self._env_pairs) >= self._max_env_lines:
                    raise RemoteProtocolError(
                        f"environment longer than {self._max_env_lines} lines"
                    )
                self._env_pairs.append((key, value[1:] if value.startswith(" ") else value))
        # READY
        while True:
            line = self._lines.take()
            if line is None:
                return self._eof_or_need("reply")
            block = self._block
            if block is not None:
                code, first, lines = block
                if line.startswith(f"{code} "):
                    self._block = None
                    self._pending -= 1
                    if code == 520:
                        return UsageError(first, tuple(lines), line[4:], True)
                    return OtherReply(code, first, (*lines, line[4:]))
                if len(lines) >= self._max_block_lines:
                    raise RemoteProtocolError(
                        f"multi-line reply longer than {self._max_block_lines} lines"
                    )
                lines.append(line)
                continue
            if line == "HANGUP":
                self.hung_up = True
                return Hangup()
            if self._pending == 0:
                raise RemoteProtocolError(f"reply without a command: {line[:200]!r}")
            m = _CODE_RE.match(line)
            if m is not None and m[2] == "-":
                self._block = (int(m[1]), m[3], [])
                continue
            reply = parse_reply_line(line)
            self._pending -= 1
            return reply

    def send(self, command: AgiCommand) -> bytes:
        """Encode ``command``; its reply will come from :meth:`next_event`."""
        if self._state is _State.ENV:
            raise LocalProtocolError("command before the environment was received")
        if self._state is not _State.READY:
            raise LocalProtocolError(f"command on a connection in state {self._state.value}")
        if self._we_are_done:
            raise LocalProtocolError("command after FAILURE")
        data = encode_command(command)
        self._pending += 1
        return data

    def send_failure(self) -> bytes:
        """The ``FAILURE`` line: Asterisk ends the AGI with AGISTATUS=FAILURE (dialplan goes on)."""
        if self._state in (_State.CLOSED, _State.ERROR):
            raise LocalProtocolError(f"FAILURE on a connection in state {self._state.value}")
        self._we_are_done = True
        return b"FAILURE\n"


# --------------------------------------------------------------------------- Asterisk side


class AsteriskConnection:
    """Asterisk's side: for the simulator, the tests and the benchmark's load generator.

    :meth:`send_env` first; then each :class:`AgiCommand` / :class:`UnknownCommand` from
    :meth:`next_event` is answered with :meth:`send_reply`; :meth:`send_hangup` any time.
    """

    def __init__(self, *, max_line: int = AGI_BUF_LEN - 1) -> None:
        self._lines = _Lines(max_line)
        self._env_sent = False
        self._pending = 0
        self._error: RemoteProtocolError | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    def send_env(self, env: AgiEnv | Iterable[tuple[str, str]]) -> bytes:
        if self._env_sent:
            raise LocalProtocolError("environment already sent")
        data = encode_env(env.pairs if isinstance(env, AgiEnv) else env)
        self._env_sent = True
        return data

    def send_reply(self, reply: AgiReply) -> bytes:
        if not self._env_sent:
            raise LocalProtocolError("reply before the environment")
        if self._pending == 0:
            raise LocalProtocolError("reply without a command")
        data = encode_reply(reply)
        self._pending -= 1
        return data

    def send_hangup(self) -> bytes:
        if not self._env_sent:
            raise LocalProtocolError("HANGUP before the environment")
        return b"HANGUP\n"

    def receive_data(self, data: bytes) -> None:
        self._lines.feed(data)

    def next_event(self) -> AsteriskEvent | NeedData:
        if self._error is not None:
            raise RemoteProtocolError(*self._error.args)
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _next(self) -> AsteriskEvent | NeedData:
        if self._closed:
            return Closed()
        line = self._lines.take()
        if line is None:
            if not self._lines.eof:
                return NEED_DATA
            if self._lines.pending:
                raise RemoteProtocolError("EOF inside a command line")
            self._closed = True
            return Closed()
        if line[:7].lower() == "failure":
            self._closed = True
            return ScriptFailure(line)
        self._pending += 1
        return decode_command(line)
