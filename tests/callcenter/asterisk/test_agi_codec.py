"""The sans-I/O AGI codec against the Asterisk 22 captures, plus property tests."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.asterisk.agi import (
    AGI_BUF_LEN,
    COMMANDS,
    NEED_DATA,
    AgiCommand,
    AgiConnection,
    AgiEnv,
    AgiRequest,
    AgiResult,
    AsteriskConnection,
    Closed,
    DeadChannel,
    Hangup,
    InvalidCommand,
    LocalProtocolError,
    OtherReply,
    RemoteProtocolError,
    ScriptFailure,
    UnknownCommand,
    UsageError,
    decode_command,
    encode_command,
    encode_reply,
    parse_args,
    parse_reply_line,
)
from tests.callcenter.asterisk.test_agi_support import (
    AGI_CAPTURES,
    make_env,
    raw_sessions,
    read_capture,
)


def drain(conn: AgiConnection | AsteriskConnection) -> list[object]:
    out: list[object] = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return out
        out.append(ev)
        if isinstance(ev, Closed):
            return out


def script_events(raw: bytes, commands: list[str], chunks: list[int] | None = None,
                  eof: bool = True) -> list[object]:
    """Feed ``raw`` (Asterisk's bytes) to a script-side connection; the commands are sent as
    soon as the environment arrived (pipelined), so every reply has a command."""
    conn = AgiConnection()
    events: list[object] = []
    sent = False
    pieces = [raw] if chunks is None else _split(raw, chunks)
    for piece in pieces + ([b""] if eof else []):
        conn.receive_data(piece)
        while (ev := conn.next_event()) is not NEED_DATA:
            events.append(ev)
            if isinstance(ev, AgiEnv) and not sent:
                for c in commands:
                    conn.send(as_command(c))
                sent = True
            if isinstance(ev, Closed):
                break
    return events


def as_command(line: str) -> AgiCommand:
    """A captured command line as an AgiCommand (an unknown one too, to send it)."""
    cmd = decode_command(line)
    if isinstance(cmd, UnknownCommand):
        return AgiCommand(cmd.words[0], cmd.words[1:])
    return cmd


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return [p for p in out if p]


# --------------------------------------------------------------------------- captures


@pytest.mark.parametrize("name", AGI_CAPTURES)
def test_every_capture_parses_to_its_messages(name: str) -> None:
    sessions = read_capture(name)
    raws = raw_sessions(name) if name != "fastagi-session" else None
    for i, s in enumerate(sessions):
        if raws is not None:
            raw = raws[i]
        else:  # fastagi-session has no .raw: rebuild Asterisk's bytes from the .txt
            raw = AsteriskConnection().send_env(s.env) + "".join(
                line + "\n" for line in s.received).encode()
        events = script_events(raw, s.sent)
        env = events[0]
        assert isinstance(env, AgiEnv)
        assert list(env.pairs) == s.env
        assert isinstance(events[-1], Closed)
        replies = [e for e in events[1:-1] if not isinstance(e, Hangup)]
        assert len(replies) == len(s.sent)  # one reply per command, 520 blocks included
        # the bytes re-encode to exactly what Asterisk sent
        rebuilt = AsteriskConnection().send_env(env)
        rebuilt += b"".join(b"HANGUP\n" if isinstance(e, Hangup) else encode_reply(e)  # type: ignore[arg-type]
                            for e in events[1:-1])
        assert rebuilt == raw


def test_agi_edge_messages() -> None:
    (s,) = read_capture("agi-edge")
    events = script_events(raw_sessions("agi-edge")[0], s.sent)
    env = events[0]
    assert isinstance(env, AgiEnv)
    assert env.network and env.network_script == "ivr?lang=en"
    assert env.request.script == "ivr" and env.request.params == {"lang": "en"}
    assert env.request.host == "127.0.0.1" and env.request.port == 4573
    assert env.args == ("first arg", "second")
    assert env.channel == "Local/args@agi-edge-0000001e;2"
    assert env.callerid == "+14155550199" and env.calleridname == "Jack Caller"
    assert env.priority == 2 and env.accountcode == "" and env.dnid == "unknown"
    assert events[1:-1] == [
        AgiResult("0"),  # ANSWER
        AgiResult("0"),  # GET VARIABLE (unset)
        AgiResult("", "timeout"),  # GET DATA timeout
        AgiResult("0"),  # SAY NUMBER
        AgiResult("0"),  # EXEC Playback
        AgiResult("-2"),  # EXEC unknown application
        AgiResult("0", None, (("endpos", "8000"),)),  # STREAM FILE
        AgiResult("-1"),  # WAIT FOR DIGIT, caller hangs up
        Hangup(),
        DeadChannel("Command Not Permitted on a dead channel or intercept routine"),
        AgiResult("1", "Local/args@agi-edge-0000001e;2"),  # GET VARIABLE on the dead channel
        AgiResult("1"),  # VERBOSE
        AgiResult("0"),  # EXEC
        AgiResult("0"),  # NOOP
    ]
    stream = events[7]
    assert isinstance(stream, AgiResult) and stream.endpos == 8000 and stream.value == 0
    timeout = events[3]
    assert isinstance(timeout, AgiResult) and timeout.value is None


def test_agi_badarg_usage_blocks() -> None:
    (s,) = read_capture("agi-badarg")
    events = script_events(raw_sessions("agi-badarg")[0], s.sent)
    blocks = [e for e in events if isinstance(e, UsageError)]
    assert len(blocks) == 6
    assert all(b.text == "Invalid command syntax.  Proper usage follows:" for b in blocks)
    assert all(b.end == "End of proper usage." and b.multiline for b in blocks)
    assert blocks[0].usage[0].startswith("Stream the given <replaceable>file</replaceable>")
    assert len(blocks[2].usage) == 5  # STREAM FILE: several lines, indented <value> lines
    # a usage line that looks like a reply stays usage text
    assert "Example return code: 200 result=1 (testvariable)" in blocks[5].usage
    assert events[-2] == AgiResult("0")  # NOOP still alive


def test_fastagi_session_replies() -> None:
    (s,) = read_capture("fastagi-session")
    raw = AsteriskConnection().send_env(s.env) + "".join(
        line + "\n" for line in s.received).encode()
    events = script_events(raw, s.sent)
    assert events[1:-1] == [
        AgiResult("0"),
        AgiResult("-1", None, (("endpos", "0"),)),
        AgiResult("2"),
        AgiResult("1"),
        AgiResult("1", "+14155550100"),
        AgiResult("1"),
        AgiResult("0"),
        InvalidCommand("Invalid or unknown command"),
    ]


def test_dial_return_and_survey() -> None:
    s1, s2 = read_capture("agi-dial-return")
    r1, r2 = raw_sessions("agi-dial-return")
    ev1 = script_events(r1, s1.sent)
    ev2 = script_events(r2, s2.sent)
    assert ev1[2] == AgiResult("0")  # GET VARIABLE of an unset variable: no parentheses
    assert ev2[3] == AgiResult("1", "NOANSWER|||0")
    assert isinstance(ev1[0], AgiEnv) and isinstance(ev2[0], AgiEnv)
    assert (ev1[0].priority, ev2[0].priority) == (2, 5)
    assert ev2[0].request.script == "after-dial"
    (s,) = read_capture("agi-survey")
    ev = script_events(raw_sessions("agi-survey")[0], s.sent)
    assert ev[3] == AgiResult("4")  # GET DATA with one DTMF digit
    assert ev[2] == AgiResult("1", "Local/8400@survey-in-0000000c;2|survey|s|2")


@pytest.mark.parametrize("name", AGI_CAPTURES)
def test_captured_commands_decode_and_reencode(name: str) -> None:
    for s in read_capture(name):
        for line in s.sent:
            cmd = decode_command(line)
            if line == "THIS IS NOT A COMMAND":
                assert cmd == UnknownCommand(("THIS", "IS", "NOT", "A", "COMMAND"))
                continue
            assert isinstance(cmd, AgiCommand)
            assert decode_command(encode_command(cmd).decode()[:-1]) == cmd


# --------------------------------------------------------------------------- details


def test_parse_args_like_res_agi() -> None:
    assert parse_args('SAY NUMBER 1234 ""') == ["SAY", "NUMBER", "1234", ""]
    assert parse_args('VERBOSE "still here after hangup" 1') == [
        "VERBOSE", "still here after hangup", "1"]
    assert parse_args(r'SET VARIABLE X "a\"b\\c"') == ["SET", "VARIABLE", "X", 'a"b\\c']
    assert parse_args("  NOOP   a\tb  ") == ["NOOP", "a", "b"]
    assert parse_args('NOOP ab"c d"e') == ["NOOP", "abc de"]
    assert parse_args(r"NOOP a\ b") == ["NOOP", "a b"]
    assert decode_command("get   variable CHANNEL") == AgiCommand("GET VARIABLE", ("CHANNEL",))
    assert decode_command("") == UnknownCommand(())
    assert decode_command("GET") == UnknownCommand(("GET",))


def test_encode_quoting() -> None:
    assert encode_command(AgiCommand.of("ANSWER")) == b"ANSWER\n"
    assert encode_command(AgiCommand.of("SAY NUMBER", 1234, "")) == b'SAY NUMBER 1234 ""\n'
    assert encode_command(AgiCommand.of("VERBOSE", "routing done", 1)) == b'VERBOSE "routing done" 1\n'
    assert encode_command(AgiCommand.of("SET VARIABLE", "X", 'say "hi"\\')) == (
        b'SET VARIABLE X "say \\"hi\\"\\\\"\n')
    assert encode_command(AgiCommand.of("STREAM FILE", "silence/1", "#")) == b"STREAM FILE silence/1 #\n"


@pytest.mark.parametrize("bad", [
    AgiCommand("SET VARIABLE", ("X", "a\nb")),
    AgiCommand("SET VARIABLE", ("X", "a\rb")),
    AgiCommand("SET VARIABLE", ("X", "a\x00b")),
    AgiCommand("", ()),
    AgiCommand("SET\nVARIABLE", ()),
    AgiCommand('GET "X"', ()),
    AgiCommand("NOOP", tuple("x" * 127)),
    AgiCommand("NOOP", ("x" * AGI_BUF_LEN,)),
])
def test_encode_rejects_our_misuse(bad: AgiCommand) -> None:
    with pytest.raises(LocalProtocolError):
        encode_command(bad)
    with pytest.raises(LocalProtocolError):
        AgiCommand.of("NOOP", True)


def test_script_side_misuse_and_peer_errors() -> None:
    conn = AgiConnection()
    with pytest.raises(LocalProtocolError):
        conn.send(AgiCommand.of("ANSWER"))  # before the environment
    conn.receive_data(AsteriskConnection().send_env(make_env()))
    assert isinstance(conn.next_event(), AgiEnv)
    conn.receive_data(b"200 result=0\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()  # a reply nobody asked for
    with pytest.raises(RemoteProtocolError):
        conn.next_event()  # and the connection stays broken
    with pytest.raises(LocalProtocolError):
        conn.send(AgiCommand.of("ANSWER"))


@pytest.mark.parametrize("data", [
    b"no colon here\n\n",
    b"\n",  # empty environment
    b"agi_network: yes\n",  # EOF inside the environment
    b"agi_x: " + b"y" * 70000,  # line over the limit, no LF yet
])
def test_bad_environment(data: bytes) -> None:
    conn = AgiConnection()
    conn.receive_data(data)
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_env_line_limit() -> None:
    conn = AgiConnection(max_env_lines=5)
    conn.receive_data(b"".join(f"agi_k{i}: v\n".encode() for i in range(6)))
    with pytest.raises(RemoteProtocolError):
        drain(conn)


def test_bad_replies() -> None:
    for line in [b"garbage\n", b"200 noresult\n", b"20 result=1\n", b"520-x\n" + b"u\n" * 5]:
        conn = AgiConnection(max_block_lines=3)
        conn.receive_data(AsteriskConnection().send_env(make_env()) + line)
        conn.receive_data(b"")
        assert isinstance(conn.next_event(), AgiEnv)
        conn.send(AgiCommand.of("NOOP"))
        with pytest.raises(RemoteProtocolError):
            drain(conn)


def test_reply_variants() -> None:
    assert parse_reply_line("200 result=1 (dtmf) endpos=1234") == AgiResult(
        "1", "dtmf", (("endpos", "1234"),))
    assert parse_reply_line("200 result=12 (timeout)") == AgiResult("12", "timeout")
    assert parse_reply_line("200 result=1 (a) b) c=(d)") == AgiResult("1", "a) b) c=(d")
    sp = parse_reply_line('200 result=1 (speech) endpos=5 results=1 score0=9 text0="a b" grammar0=g')
    assert isinstance(sp, AgiResult) and sp.data is None and sp.tail.startswith(" (speech)")
    assert parse_reply_line("520 Invalid command syntax.  Proper usage not available.") == UsageError(
        "Invalid command syntax.  Proper usage not available.", (), "", False)
    assert parse_reply_line("599 odd") == OtherReply(599, "odd")
    conn = AgiConnection()
    conn.receive_data(AsteriskConnection().send_env(make_env()) + b"300-a\nb\n300 c\nHANGUP\n")
    assert isinstance(conn.next_event(), AgiEnv)
    conn.send(AgiCommand.of("NOOP"))
    assert drain(conn) == [OtherReply(300, "a", ("b", "c")), Hangup()]
    assert conn.hung_up


def test_failure_line_and_asterisk_side() -> None:
    ast = AsteriskConnection()
    with pytest.raises(LocalProtocolError):
        ast.send_reply(AgiResult("0"))
    ast.send_env(make_env())
    with pytest.raises(LocalProtocolError):
        ast.send_reply(AgiResult("0"))  # no command pending
    conn = AgiConnection()
    fail = conn.send_failure()  # allowed before the environment: refusing a session
    assert fail == b"FAILURE\n"
    ast.receive_data(fail)
    assert ast.next_event() == ScriptFailure("FAILURE")
    assert ast.next_event() == Closed()


def test_request_parsing() -> None:
    r = AgiRequest.parse("agi://10.0.0.1/ivr/main?lang=en&x=1&x=2")
    assert (r.script, r.host, r.port, r.query_string) == ("ivr/main", "10.0.0.1", None, "lang=en&x=1&x=2")
    assert r.query == (("lang", "en"), ("x", "1"), ("x", "2")) and r.params["x"] == "2"
    c = AgiRequest.parse("/var/lib/asterisk/agi-bin/callcenter-agi")
    assert c.scheme == "" and c.script == "/var/lib/asterisk/agi-bin/callcenter-agi"


# --------------------------------------------------------------------------- properties

ALL_RAW = [(n, i, raw) for n in AGI_CAPTURES if n != "fastagi-session"
           for i, raw in enumerate(raw_sessions(n))]


@given(case=st.sampled_from(ALL_RAW), cuts=st.lists(st.integers(0, 3000), max_size=40))
def test_any_chunking_gives_the_same_messages(case: tuple[str, int, bytes], cuts: list[int]) -> None:
    name, i, raw = case
    sent = read_capture(name)[i].sent
    assert script_events(raw, sent, cuts) == script_events(raw, sent)


@settings(max_examples=300)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8),
       with_env=st.booleans(), pending=st.integers(0, 3))
def test_random_bytes_never_crash_or_hang(data: bytes, cuts: list[int], with_env: bool,
                                          pending: int) -> None:
    conn = AgiConnection(max_line=128, max_env_lines=16, max_block_lines=8)
    prefix = AsteriskConnection().send_env(make_env()) if with_env else b""
    sent = False
    try:
        for piece in [*_split(prefix + data, cuts), b""]:
            conn.receive_data(piece)
            for _ in range(10_000):  # bounded: each step consumes a line or stops
                ev = conn.next_event()
                if ev is NEED_DATA or isinstance(ev, Closed):
                    break
                if isinstance(ev, AgiEnv) and not sent:
                    for _ in range(pending):
                        conn.send(AgiCommand.of("NOOP"))
                    sent = True
            else:
                pytest.fail("next_event() did not stop")
    except RemoteProtocolError:
        pass
    ast = AsteriskConnection(max_line=128)
    try:
        for piece in [*_split(data, cuts), b""]:
            ast.receive_data(piece)
            while True:
                ev = ast.next_event()
                if ev is NEED_DATA or isinstance(ev, Closed | ScriptFailure):
                    break
                assert isinstance(ev, AgiCommand | UnknownCommand)
    except RemoteProtocolError:
        pass


_arg_text = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
                    max_size=20)


@settings(max_examples=300)
@given(name=st.sampled_from(list(COMMANDS)), args=st.lists(_arg_text, max_size=8),
       cuts=st.lists(st.integers(0, 200), max_size=5))
def test_encode_decode_identity_for_commands(name: str, args: list[str], cuts: list[int]) -> None:
    cmd = AgiCommand(name, tuple(args))
    ast = AsteriskConnection()
    for piece in _split(encode_command(cmd) * 2, cuts):
        ast.receive_data(piece)
    assert drain(ast) == [cmd, cmd]


_token = st.text(st.characters(blacklist_characters="()=",
                                blacklist_categories=("Cs", "Cc", "Z")),
                 min_size=1, max_size=8)
_replies = st.one_of(
    st.builds(AgiResult, st.from_regex(r"-?[0-9]{0,3}", fullmatch=True),
              st.none() | st.text(st.characters(blacklist_characters="\r\n\x00",
                                                blacklist_categories=("Cs",)), max_size=20),
              st.lists(st.tuples(_token, _token), max_size=3).map(tuple)),
    st.just(InvalidCommand()), st.just(DeadChannel()),
    st.builds(UsageError, usage=st.lists(_token.filter(lambda t: not t.startswith("520 ")),
                                         max_size=4).map(tuple)),
)


@given(replies=st.lists(_replies, max_size=6), hangup_at=st.integers(0, 6),
       cuts=st.lists(st.integers(0, 400), max_size=6))
def test_encode_decode_identity_for_replies(replies: list[object], hangup_at: int,
                                            cuts: list[int]) -> None:
    ast = AsteriskConnection()
    data = ast.send_env(make_env(args=("a b", "")))
    conn = AgiConnection()
    conn.receive_data(data)
    env = conn.next_event()
    assert isinstance(env, AgiEnv) and env.args == ("a b", "")
    wire = b""
    expected: list[object] = []
    for i, r in enumerate(replies):
        ast.receive_data(conn.send(AgiCommand.of("NOOP")))
        assert isinstance(ast.next_event(), AgiCommand)
        if i == hangup_at:
            wire += ast.send_hangup()
            expected.append(Hangup())
        wire += ast.send_reply(r)  # type: ignore[arg-type]
        expected.append(r)
    for piece in _split(wire, cuts):
        conn.receive_data(piece)
    assert drain(conn) == expected


# --------------------------------------------------------------------------- mutation fuzzing
# (`make fuzz` runs these long): real FastAGI sessions with bytes flipped, cut, repeated, fed to
# both sides; each gives events or a RemoteProtocolError, never another exception nor a hang.

@st.composite
def _mutated_session(draw: st.DrawFn) -> bytes:
    _name, _i, raw = draw(st.sampled_from(ALL_RAW))
    data = bytearray(raw[:4000])
    for _ in range(draw(st.integers(1, 10))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if op == "flip" and data:
            data[at] = draw(st.sampled_from([0, 10, 13, 32, 34, 40, 41, 61, 0xFF]))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"\n", b"\n\n", b"200 result=",
                                                b"520-Invalid command syntax.\n",
                                                b"agi_request: ", b"HANGUP\n", b"(", b")", b"=" * 50]))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 80))]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 150))] * draw(st.integers(1, 30))
    return bytes(data)


@settings(deadline=None)
@given(data=_mutated_session(), cuts=st.lists(st.integers(0, 4000), max_size=10))
def test_mutated_sessions_give_events_or_a_protocol_error(data: bytes, cuts: list[int]) -> None:
    for conn in (AgiConnection(max_line=512, max_env_lines=64, max_block_lines=32),
                 AsteriskConnection(max_line=512)):
        sent = False
        try:
            for piece in [*_split(data, cuts), b""]:
                conn.receive_data(piece)
                for _ in range(10_000):
                    ev = conn.next_event()
                    if ev is NEED_DATA or isinstance(ev, Closed | ScriptFailure):
                        break
                    if isinstance(conn, AgiConnection) and isinstance(ev, AgiEnv) and not sent:
                        conn.send(AgiCommand.of("NOOP"))
                        sent = True
                else:
                    pytest.fail("next_event() did not stop")
        except RemoteProtocolError as e:
            assert str(e)
