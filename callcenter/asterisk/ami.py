"""Sans-I/O codec for the Asterisk Manager Interface (AMI).

Bytes in, messages out; messages in, bytes out.  Nothing here touches a socket, a clock or a
thread.  The shape follows h11: an :class:`AMIConnection` is fed with :meth:`~AMIConnection.
receive_data` and drained with :meth:`~AMIConnection.next_event` (or :meth:`~AMIConnection.
events`), and :meth:`~AMIConnection.send` turns a message into the bytes to write.

Framing rules (checked against the Asterisk 22 captures in ``shared/asterisk-captures``):

* A message ends at an empty line.  Lines end in CRLF or a bare LF, so the terminator is
  ``\\n\\r\\n`` or ``\\n\\n``.  Framing happens on bytes; a frame is decoded (UTF-8) only once it is
  complete, so a character split across two reads is never mangled.  The tail is kept.
* The banner (``Asterisk Call Manager/11.0.0``) is a single line with no blank line after it.
* ``Message: Park successful\\n\\r\\n\\r\\n`` (the stray LF of a Park response) is tolerated.
* Pre-14 ``Response: Follows`` command output runs until ``--END COMMAND--``; its raw lines land in
  :attr:`Response.body`.  Asterisk 22 sends ``Output:`` headers instead; :attr:`Response.output`
  gives either.
* A message is an :class:`Event` when its first Event/Response header is ``Event`` (so
  ``OriginateResponse``, which also carries ``Response:``, is an event), otherwise a
  :class:`Response`.  A frame with neither is the peer breaking the protocol.
* Repeated keys (``Variable``, ``ChanVariable``, ``Output``) are kept, in order.

Two exception types separate blame, as in h11: :class:`RemoteProtocolError` (the peer sent
something we cannot accept, e.g. an oversized frame) and :class:`LocalProtocolError` (we misused
the codec, e.g. a CR/LF inside a header value).
"""
from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = [
    "AMIConnection",
    "AMIError",
    "Action",
    "Banner",
    "ConnectionClosed",
    "DEFAULT_MAX_FRAME_SIZE",
    "Event",
    "Headers",
    "LocalProtocolError",
    "Message",
    "NEED_DATA",
    "NeedData",
    "ProtocolError",
    "RemoteProtocolError",
    "Response",
    "Role",
    "encode_action",
    "make_action",
    "make_event",
    "make_response",
]

Headers: TypeAlias = tuple[tuple[str, str], ...]
FieldValue: TypeAlias = "str | int | float | bool | Sequence[str]"
Fields: TypeAlias = "Mapping[str, FieldValue] | Iterable[tuple[str, FieldValue]]"

DEFAULT_MAX_FRAME_SIZE: Final = 4 * 1024 * 1024
BANNER_PREFIX: Final = "Asterisk Call Manager/"
END_COMMAND: Final = "--END COMMAND--"
_END_COMMAND_B: Final = b"--END COMMAND--"
_INF: Final = 1 << 62
_new = object.__new__


# --------------------------------------------------------------------------------------------
# errors


class AMIError(Exception):
    """Base class of every AMI error (codec and client)."""


class ProtocolError(AMIError):
    """The AMI protocol was broken, by one side or the other."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol (oversized frame, a message that is neither event nor
    response, EOF in the middle of a message).  The connection cannot be trusted any more."""


class LocalProtocolError(ProtocolError, ValueError):
    """We misused the codec: an invalid header key/value, a message the role may not send,
    feeding data after EOF."""


# --------------------------------------------------------------------------------------------
# messages


def _scan(raw: str, key: str) -> str | None:
    """The first value of ``key`` (exact case) in a CRLF frame's text, without splitting it."""
    if raw.startswith(key) and raw.startswith(": ", len(key)):
        start = len(key) + 2
    else:
        i = raw.find("\r\n" + key + ": ")
        if i < 0:
            return None
        start = i + len(key) + 4
    end = raw.find("\r\n", start)
    return raw[start:] if end < 0 else raw[start:end]


def _split(raw: str) -> tuple[Headers, tuple[str, ...]]:
    """A frame's text as (headers, body): ``Key: value`` lines, and any other lines."""
    parts = [line.partition(": ") for line in raw.split("\r\n")]
    headers = tuple([(k, v) for k, sep, v in parts if sep])
    if len(headers) == len(parts):
        return headers, ()
    return headers, tuple([k for k, sep, _ in parts if not sep and k])


class _HeaderAccess:
    """Convenient access to the ordered ``headers`` of a message.

    ``msg["Channel"]`` / ``msg.get("channel")`` give the first value (exact key first, then
    case-insensitively); ``msg.get_all("Variable")`` gives every value of a repeated key.

    A message the codec builds keeps its decoded frame text and splits it into ``headers``
    (and ``body``, ``action_id``) only when they are first read; ``get`` finds a key straight in
    the text. Most events are dispatched on their name and read for a few keys, so most frames
    are never split line by line.
    """

    __slots__ = ()
    headers: Headers

    def __getattr__(self, name: str) -> object:
        # only reached for the lazy fields of a codec-built message (see AMIConnection.events)
        d = self.__dict__
        raw = d.get("_raw")
        if raw is None or name not in ("headers", "body", "action_id"):
            raise AttributeError(name)
        if name == "action_id":
            d["action_id"] = _scan(raw, "ActionID")
        else:
            d["headers"], d["body"] = _split(raw)
        return d[name]

    def get(self, key: str, default: str | None = None) -> str | None:
        d = self.__dict__
        raw: str | None = d.get("_raw")
        if raw is not None and "headers" not in d:
            # straight in the text: "\r\nKey: " (or the first line), exact case first
            i = raw.find("\r\n" + key + ": ")
            if i >= 0:
                start = i + len(key) + 4
                end = raw.find("\r\n", start)
                return raw[start:] if end < 0 else raw[start:end]
            if raw.startswith(key + ": "):
                end = raw.find("\r\n")
                return raw[len(key) + 2:] if end < 0 else raw[len(key) + 2:end]
            low: str | None = d.get("_low")
            if low is None:
                low = d["_low"] = raw.lower()
            lkey = key.lower() + ": "
            if "\r\n" + lkey not in low and not low.startswith(lkey):
                return default
        for k, v in self.headers:
            if k == key:
                return v
        low_key = key.lower()
        for k, v in self.headers:
            if k.lower() == low_key:
                return v
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self.headers if k == key or k.lower() == low]

    def as_dict(self) -> dict[str, str | list[str]]:
        """Headers as a dict; a repeated key maps to the list of its values."""
        out: dict[str, str | list[str]] = {}
        for k, v in self.headers:
            old = out.get(k)
            if old is None:
                out[k] = v
            elif isinstance(old, list):
                old.append(v)
            else:
                out[k] = [old, v]
        return out


@dataclass(frozen=True)
class Banner(_HeaderAccess):
    """The greeting line, e.g. ``Asterisk Call Manager/11.0.0`` (it has no headers)."""

    text: str
    version: str = ""

    @property
    def headers(self) -> Headers:  # type: ignore[override]
        return ()

    @property
    def name(self) -> str:
        return "Banner"

    @property
    def action_id(self) -> None:
        return None


@dataclass(frozen=True)
class Response(_HeaderAccess):
    """The reply to an action.  ``name`` is the value of the ``Response`` header
    (``Success``, ``Error``, ``Goodbye``, ``Follows``...).  ``headers`` holds every line, the
    ``Response`` line included, in wire order."""

    name: str
    headers: Headers
    action_id: str | None = None
    body: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.name in ("Success", "Follows", "Goodbye")

    @property
    def message(self) -> str | None:
        return self.get("Message")

    @property
    def is_list_start(self) -> bool:
        """True when event-list items follow (``EventList: start``)."""
        value = self.get("EventList")
        return value is not None and value.lower() == "start"

    @property
    def output(self) -> tuple[str, ...]:
        """Command output: the ``Output:`` lines (Asterisk >= 14) or the raw body (Follows)."""
        return self.body if self.body else tuple(self.get_all("Output"))


@dataclass(frozen=True)
class Event(_HeaderAccess):
    """An event.  ``name`` is the value of the ``Event`` header; ``action_id`` is set for
    event-list items and for events an action caused (UserEvent, OriginateResponse)."""

    name: str
    headers: Headers
    action_id: str | None = None
    body: tuple[str, ...] = ()

    @property
    def is_list_complete(self) -> bool:
        value = self.get("EventList")
        return value is not None and value.lower() == "complete"


# A codec-built Event/Response splits its text on first use (_HeaderAccess.__getattr__), so these
# fields must not be found on the class; their defaults live on in the generated __init__.
for _cls in (Response, Event):
    del _cls.action_id, _cls.body


@dataclass(frozen=True)
class Action(_HeaderAccess):
    """An action sent by the client.  ``headers`` holds every line, ``Action`` and ``ActionID``
    included; build it with :func:`make_action`."""

    name: str
    headers: Headers
    action_id: str | None = None


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer closed the connection (``receive_data(b"")``) and every message was read."""

    @property
    def name(self) -> str:
        return "ConnectionClosed"


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

Message: TypeAlias = "Banner | Response | Event | Action"


# --------------------------------------------------------------------------------------------
# building messages


def _flatten(fields: Fields | None, extra: Mapping[str, FieldValue]) -> list[tuple[str, str]]:
    items: list[tuple[str, FieldValue]] = []
    if fields is not None:
        items.extend(fields.items() if isinstance(fields, Mapping) else fields)
    items.extend(extra.items())
    out: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, (str, int, float)):
            out.append((key, str(value)))
        else:  # a sequence: repeated key
            out.extend((key, str(v)) for v in value)
    return out


def make_action(
    name: str,
    fields: Fields | None = None,
    *,
    action_id: str | None = None,
    variables: Mapping[str, str] | None = None,
    **kwargs: FieldValue,
) -> Action:
    """Build an :class:`Action`.

    ``fields`` (a mapping or (key, value) pairs) and ``kwargs`` become header lines, a list value
    becomes a repeated key, booleans become ``true``/``false``; ``variables`` becomes one
    ``Variable: k=v`` line per item.  Values are validated when encoded.
    """
    headers = [("Action", name)]
    if action_id is not None:
        headers.append(("ActionID", action_id))
    headers.extend(_flatten(fields, kwargs))
    if variables:
        headers.extend(("Variable", f"{k}={v}") for k, v in variables.items())
    return Action(name=name, headers=tuple(headers), action_id=action_id)


def make_response(
    name: str, fields: Fields | None = None, *, action_id: str | None = None,
    body: Sequence[str] = (), **kwargs: FieldValue,
) -> Response:
    """Build a :class:`Response` (used by servers, the simulator and tests)."""
    headers = [("Response", name)]
    if action_id is not None:
        headers.append(("ActionID", action_id))
    headers.extend(_flatten(fields, kwargs))
    return Response(name=name, headers=tuple(headers), action_id=action_id, body=tuple(body))


def make_event(
    name: str, fields: Fields | None = None, *, action_id: str | None = None,
    **kwargs: FieldValue,
) -> Event:
    """Build an :class:`Event`; ``ActionID`` goes last, as Asterisk puts it in list items."""
    headers = [("Event", name)]
    headers.extend(_flatten(fields, kwargs))
    if action_id is not None:
        headers.append(("ActionID", action_id))
    return Event(name=name, headers=tuple(headers), action_id=action_id)


# --------------------------------------------------------------------------------------------
# encoding


def _check_line(key: str, value: str) -> None:
    if not key or ": " in key or "\r" in key or "\n" in key:
        raise LocalProtocolError(f"invalid AMI header key {key!r}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"CR/LF in the value of AMI header {key!r}: {value!r}")


def _encode_headers(headers: Headers, body: tuple[str, ...] = (), follows: bool = False) -> bytes:
    lines: list[str] = []
    for key, value in headers:
        _check_line(key, value)
        lines.append(f"{key}: {value}\r\n")
    if follows:
        for line in body:
            if "\r" in line or "\n" in line or END_COMMAND in line:
                raise LocalProtocolError(f"invalid command output line {line!r}")
            lines.append(line + "\n")
        lines.append(END_COMMAND + "\r\n")
    elif body:
        for line in body:
            if not line or ": " in line or "\r" in line or "\n" in line:
                raise LocalProtocolError(f"invalid body line {line!r}")
            lines.append(line + "\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def encode_action(action: Action) -> bytes:
    """The bytes of one action.  CR/LF in a key or value raises :class:`LocalProtocolError`."""
    if not action.headers or action.headers[0][0] != "Action":
        if action.name:
            raise LocalProtocolError("an Action's first header must be 'Action'")
    return _encode_headers(action.headers)


def encode_message(msg: Banner | Response | Event) -> bytes:
    """The bytes of a banner, response or event (server side)."""
    if isinstance(msg, Banner):
        _check_line("Banner", msg.text)
        return msg.text.encode("utf-8") + b"\r\n"
    if isinstance(msg, Response):
        _check_first(msg.headers, "Response", msg.name)
        return _encode_headers(msg.headers, msg.body, follows=msg.name == "Follows")
    _check_first(msg.headers, "Event", msg.name)
    return _encode_headers(msg.headers, msg.body)


def _check_first(headers: Headers, key: str, name: str) -> None:
    for k, v in headers:
        if k in ("Event", "Response"):
            if k == key and v == name:
                return
            break
    raise LocalProtocolError(f"the first Event/Response header must be {key}: {name}")


# --------------------------------------------------------------------------------------------
# the connection


class Role(enum.Enum):
    CLIENT = "client"  # receives banner/responses/events, sends actions
    SERVER = "server"  # receives actions, sends banner/responses/events


def _find_action_id(headers: Headers) -> str | None:
    for k, v in headers:
        if k == "ActionID":
            return v
    return None


class AMIConnection:
    """The AMI state machine for one TCP connection.

    >>> conn = AMIConnection()
    >>> conn.receive_data(b"Asterisk Call Manager/11.0.0\\r\\nResponse: Success\\r\\n\\r\\n")
    >>> conn.next_event()
    Banner(text='Asterisk Call Manager/11.0.0', version='11.0.0')
    >>> conn.next_event().name
    'Success'
    >>> conn.next_event()
    <NeedData.NEED_DATA: 'NEED_DATA'>

    ``receive_data(b"")`` signals EOF.  ``receive_data`` only frames (on bytes); a frame is
    decoded and parsed when ``next_event`` hands it out, so a message is built just before it
    is used.  A protocol error is raised by ``next_event`` once the messages that came before
    it have been returned, and every later call raises it again.
    """

    def __init__(
        self, role: Role = Role.CLIENT, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        if max_frame_size < 64:
            raise LocalProtocolError("max_frame_size must be at least 64 bytes")
        self.role: Final = role
        self.max_frame_size: Final = max_frame_size
        self.banner: Banner | None = None
        self._buf = bytearray()
        self._scan = 0  # where the terminator search resumes in _buf (slow path)
        self._client = role is Role.CLIENT
        self._expect_banner = self._client
        self._crlf: bool | None = None  # the peer's line ending, from its first line
        # complete frames not yet parsed (bytes), or messages already built (banner, Follows)
        self._frames: deque[bytes | bytearray | Banner | Response] = deque()
        self._error: RemoteProtocolError | None = None
        self._eof = False

    # ---- receiving -----------------------------------------------------------------------

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not yet part of a complete frame."""
        return bytes(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed the connection."""
        if self._eof:
            raise LocalProtocolError("receive_data() called after EOF")
        if not data:
            self._eof = True
            if self._error is None and self._buf.strip(b"\r\n"):
                self._error = RemoteProtocolError(
                    f"connection closed in the middle of a message ({len(self._buf)} bytes)")
            self._buf.clear()
            return
        if self._error is not None:
            return
        buf = self._buf
        buf += data
        try:
            self._frame(buf)
        except RemoteProtocolError as exc:
            self._error = exc
            buf.clear()

    def _frame(self, buf: bytearray) -> None:
        if self._expect_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                self._check_size(len(buf))
                return
            self._expect_banner = False
            line = bytes(buf[:nl]).rstrip(b"\r")
            if b": " not in line:
                text = line.decode("utf-8", "replace")
                self.banner = Banner(text, text.rpartition("/")[2] if "/" in text else "")
                self._frames.append(self.banner)
                del buf[: nl + 1]
        if self._crlf is None:
            nl = buf.find(b"\n")
            if nl < 0:
                self._check_size(len(buf))
                return
            self._crlf = nl > 0 and buf[nl - 1] == 13
        if self._crlf and b"Response: Follows" not in buf:
            # fast path for a CRLF peer: split on CRLF CRLF.  A frame that still holds a bare
            # LF (the Park response's stray "\n") is split further by _parse_bare_lf.
            last = buf.rfind(b"\r\n\r\n")
            if last >= 0:
                block = bytes(buf[:last])
                frames = block.split(b"\r\n\r\n")
                del buf[: last + 4]
                if last > self.max_frame_size:
                    for frame in frames:
                        self._check_size(len(frame))
                if block.count(b"\n") == block.count(b"\r\n"):
                    self._frames.extend(frames)
                else:  # a bare LF somewhere: mark those frames (bytearray) for the careful parser
                    self._frames.extend(
                        f if f.count(b"\n") == f.count(b"\r\n") else bytearray(f) for f in frames)
            self._scan = max(0, len(buf) - 3)
            self._check_size(len(buf))
            return
        self._frame_slow(buf)

    def _frame_slow(self, buf: bytearray) -> None:
        """Frames ended by ``\\n\\r\\n`` or ``\\n\\n`` (bare LF), and Follows output."""
        max_size = self.max_frame_size
        find = buf.find
        emit = self._frames.append
        pos = 0
        crlf = lf2 = -1  # next "\n\r\n" / "\n\n" at or after start (_INF: none in buf)
        start = self._scan
        while True:
            if crlf < start:
                crlf = find(b"\n\r\n", start)
                if crlf < 0:
                    crlf = _INF
            if lf2 < start:
                lf2 = find(b"\n\n", start)
                if lf2 < 0:
                    lf2 = _INF
            if crlf < lf2:
                end = crlf
                nxt = crlf + 3
            elif lf2 != _INF:
                end = lf2
                nxt = lf2 + 2
            else:
                break
            stop = end - 1 if end > pos and buf[end - 1] == 13 else end
            if stop - pos > max_size:
                raise RemoteProtocolError(
                    f"AMI frame of {stop - pos} bytes exceeds the limit of {max_size}")
            if stop <= pos:  # an empty line between messages
                pos = start = nxt
                continue
            if buf[pos] == 82 and buf.startswith(b"Response: Follows", pos):
                # old-style command output: runs to --END COMMAND--, then an empty line
                mark = find(_END_COMMAND_B, pos)
                if mark < 0:
                    self._check_size(len(buf) - pos)
                    break
                if mark > end:
                    start = mark
                    continue
                emit(self._follows(bytes(buf[pos:stop]).decode("utf-8", "replace")))
            else:
                frame = bytes(buf[pos:stop])
                if frame.count(b"\n") != frame.count(b"\r\n"):  # bare LF: make it CRLF
                    frame = frame.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                emit(frame)
            pos = start = nxt
        if pos:
            del buf[:pos]
        self._scan = max(0, len(buf) - 2)
        self._check_size(len(buf))

    def _check_size(self, size: int) -> None:
        if size > self.max_frame_size:
            raise RemoteProtocolError(
                f"incomplete AMI frame of {size} bytes exceeds the limit of {self.max_frame_size}")

    def _parse(self, frame: bytes) -> Banner | Response | Event | Action | None:
        """One CRLF-only frame to a message (None for a frame of blank lines).

        This is the hot path: one decode, one split, one partition per line, and the message
        built without running the dataclass ``__init__`` (that alone would cost a sixth of the
        frame); ``action_id`` and ``body`` keep their class-level defaults unless set.
        """
        text = frame.decode("utf-8", "replace")
        lines = text.split("\r\n")
        if text.count("\n") >= len(lines):
            return self._parse_bare_lf(text)
        parts = [line.partition(": ") for line in lines]
        headers = tuple([(k, v) for k, sep, v in parts if sep])
        if len(headers) == len(parts) and self._client:
            k0 = headers[0][0]
            if k0 == "Event" or k0 == "Response":
                cls = Event if k0 == "Event" else Response
                return cls(headers[0][1], headers, _find_action_id(headers) if "ActionID" in text else None)
        return self._parse_unusual(text, parts, headers)

    def _parse_bare_lf(self, text: str) -> Banner | Response | Event | Action | None:
        """A frame with bare-LF line endings: it may hold several messages ("\\n\\n")."""
        subframes = [f for f in text.replace("\r\n", "\n").split("\n\n") if f.strip("\n")]
        for sub in reversed(subframes[1:]):
            self._frames.appendleft(sub.replace("\n", "\r\n").encode("utf-8"))
        if not subframes:
            return None
        return self._parse(subframes[0].replace("\n", "\r\n").encode("utf-8"))

    def _parse_unusual(
        self, text: str, parts: list[tuple[str, str, str]], headers: Headers,
    ) -> Banner | Response | Event | Action | None:
        """Blank lines, non-header lines, a glued banner, server-side actions."""
        body: tuple[str, ...] = ()
        if len(headers) != len(parts):
            parts = [p for p in parts if p[0] or p[1]]  # drop blank lines
            if not parts:
                return None
            if parts[0][0].startswith(BANNER_PREFIX) and not parts[0][1]:  # banner + message
                rest = "\r\n".join(k + s + v for k, s, v in parts[1:])
                if rest:
                    self._frames.appendleft(rest.encode("utf-8"))
                return Banner(parts[0][0], parts[0][0].rpartition("/")[2])
            body = tuple([k for k, sep, _ in parts if not sep])
        if not headers:
            raise RemoteProtocolError(f"AMI frame without any header: {text[:80]!r}")
        action_id = _find_action_id(headers) if "ActionID" in text else None
        if not self._client:
            names = [v for k, v in headers if k == "Action"]
            return Action(names[0] if names else "", headers, action_id)
        found = [kv for kv in headers if kv[0] == "Event" or kv[0] == "Response"]
        if not found:
            raise RemoteProtocolError(f"AMI message with neither Event nor Response: {text[:80]!r}")
        key, name = found[0]
        if key == "Event":
            return Event(name, headers, action_id, body)
        return Response(name, headers, action_id, body)

    @staticmethod
    def _follows(text: str) -> Response:
        """Parse a pre-14 ``Response: Follows`` frame: CRLF header lines, then raw LF output."""
        headers: list[tuple[str, str]] = []
        body: list[str] = []
        in_headers = True
        for line in text.split("\n"):
            if in_headers and line.endswith("\r"):
                key, sep, value = line[:-1].partition(": ")
                if sep:
                    headers.append((key, value))
                    continue
            in_headers = False
            line = line.rstrip("\r")
            if line.endswith(END_COMMAND):
                line = line[: -len(END_COMMAND)]
            if line:
                body.append(line)
        hdrs = tuple(headers)
        return Response("Follows", hdrs, _find_action_id(hdrs), tuple(body))

    def next_event(self) -> Banner | Response | Event | Action | ConnectionClosed | NeedData:
        """The next message, ``NEED_DATA``, or ``ConnectionClosed()`` after EOF.

        Raises :class:`RemoteProtocolError` once the messages before the error are consumed.
        """
        for msg in self.events():
            return msg
        if self._error is not None:
            raise self._error
        if self._eof:
            return ConnectionClosed()
        return NEED_DATA

    def events(self) -> Iterator[Banner | Response | Event | Action]:
        """Every message available now (stops where ``next_event`` would say NEED_DATA or
        ConnectionClosed); raises :class:`RemoteProtocolError` at the point of the error.

        This is the hot path, with :meth:`_parse` inlined for CRLF frames: one decode, one
        split, one partition per line, and the message built without running the dataclass
        ``__init__`` (that alone would cost a sixth of the frame); ``action_id`` and ``body``
        keep their class-level defaults unless set.
        """
        frames = self._frames
        parse = self._parse
        client = self._client
        try:
            while frames:
                item = frames.popleft()
                if type(item) is not bytes:
                    if isinstance(item, bytearray):  # holds a bare LF: the careful parser
                        other = parse(bytes(item))
                        if other is not None:
                            yield other
                    elif not isinstance(item, bytes):
                        yield item  # a Banner or Follows Response built earlier
                    continue
                text = item.decode("utf-8", "replace")
                if client and (text.startswith("Event: ") or text.startswith("Response: ")):
                    event = text[0] == "E"
                    msg: Event | Response = _new(Event if event else Response)  # type: ignore[assignment]
                    d = msg.__dict__
                    nl = text.find("\r\n")
                    d["name"] = text[7 if event else 10:nl] if nl >= 0 else text[7 if event else 10:]
                    d["_raw"] = text
                    yield msg
                    continue
                other = parse(item)
                if other is not None:
                    yield other
        except RemoteProtocolError as exc:
            self._error = exc
            frames.clear()
            self._buf.clear()
            raise
        if self._error is not None:
            raise self._error

    # ---- sending -------------------------------------------------------------------------

    def send(self, msg: Banner | Response | Event | Action) -> bytes:
        """The bytes to write for ``msg``.  A client sends actions; a server sends the rest."""
        if self.role is Role.CLIENT:
            if not isinstance(msg, Action):
                raise LocalProtocolError(f"a client cannot send {type(msg).__name__}")
            return encode_action(msg)
        if isinstance(msg, Action):
            raise LocalProtocolError("a server cannot send an Action")
        return encode_message(msg)
