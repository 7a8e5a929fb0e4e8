"""The sans-I/O AMI codec against the Asterisk 22 captures, plus property tests."""
from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.asterisk.ami import (
    NEED_DATA,
    Action,
    AMIConnection,
    Banner,
    ConnectionClosed,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    Role,
    encode_action,
    make_action,
    make_event,
    make_response,
)
from tests.callcenter.asterisk.ami_server import CAPTURES

RAW_FILES = sorted(p.name for p in CAPTURES.glob("ami-*.raw"))
FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Msg = Banner | Response | Event | Action


def parse(data: bytes, *, chunks: list[int] | None = None, eof: bool = True) -> list[Msg]:
    conn = AMIConnection()
    out: list[Msg] = []
    if chunks is None:
        conn.receive_data(data)
    else:
        pos = 0
        for size in chunks:
            if size == 0:
                continue
            conn.receive_data(data[pos:pos + size])
            pos += size
            out.extend(conn.events())
        if data[pos:]:
            conn.receive_data(data[pos:])
    if eof:
        conn.receive_data(b"")
    out.extend(conn.events())
    return out


def raw(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def txt_stream(name: str) -> bytes:
    """The Asterisk bytes of a .txt capture: drop the '#' header, '>>> ' lines and the blank
    line that ends each '>>> ' block."""
    lines = (CAPTURES / name).read_bytes().split(b"\r\n")
    out: list[bytes] = []
    i = 0
    while i < len(lines) and lines[i].startswith(b"#"):
        i += 1
    if i < len(lines) and lines[i] == b"" and i > 0:
        i += 1  # the blank line after the header
    in_block = False
    for line in lines[i:]:
        if line.startswith(b">>> "):
            in_block = True
            continue
        if in_block and line == b"":
            in_block = False
            continue
        in_block = False
        out.append(line)
    return b"\r\n".join(out)


def names(msgs: list[Msg], cls: type = Event) -> Counter[str]:
    return Counter(m.name for m in msgs if isinstance(m, cls))


# ---- every capture ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", RAW_FILES)
def test_every_capture_parses_and_counts_match(name: str) -> None:
    data = raw(name)
    msgs = parse(data)
    assert isinstance(msgs[0], Banner) and msgs[0].version == "11.0.0"
    assert sum(isinstance(m, Banner) for m in msgs) == 1
    events = [m for m in msgs if isinstance(m, Event)]
    responses = [m for m in msgs if isinstance(m, Response)]
    # one message per "Event:"/"Response:" line that starts a block
    starts = re.findall(rb"(?:\A|\n\r?\n)(Event|Response): ", data)
    # the login response follows the banner line directly
    starts += re.findall(rb"\AAsterisk Call Manager/11\.0\.0\r\n(Event|Response): ", data)
    assert len(events) == starts.count(b"Event")
    assert len(responses) == starts.count(b"Response")
    for m in events + responses:
        assert m.headers[0][0] in ("Event", "Response")
        assert m.headers[0][1] == m.name
        assert all(k and "\r" not in v and "\n" not in v for k, v in m.headers)


@pytest.mark.parametrize("name", RAW_FILES)
def test_txt_capture_equals_raw_and_parses_the_same(name: str) -> None:
    txt = name.replace(".raw", ".txt")
    assert txt_stream(txt) == raw(name)


def test_ami_stream_txt() -> None:
    msgs = parse((CAPTURES / "ami-stream.txt").read_bytes())
    assert msgs[0] == Banner("Asterisk Call Manager/11.0.0", "11.0.0")
    assert isinstance(msgs[1], Response) and msgs[1].action_id == "login-1"
    assert msgs[2].name == "FullyBooted" and msgs[3].name == "SuccessfulAuth"
    ev = names(msgs)
    assert ev["Newchannel"] >= 2 and ev["Hangup"] >= 2
    assert sum(ev.values()) + sum(names(msgs, Response).values()) + 1 == len(msgs)


def test_edge_capture_details() -> None:
    msgs = parse(raw("ami-edge.raw"))
    by_id: dict[str, list[Msg]] = {}
    for m in msgs:
        if m.action_id:
            by_id.setdefault(m.action_id, []).append(m)
    # login response before FullyBooted and SuccessfulAuth
    assert [m.name for m in msgs[1:4]] == ["Success", "FullyBooted", "SuccessfulAuth"]
    ping = by_id["ping-1"][0]
    assert isinstance(ping, Response) and ping.ok and ping.message is None
    assert ping["Ping"] == "Pong" and "Timestamp" in ping
    assert by_id["events-2"][0].get("Events") == "Off"
    assert by_id["events-6"][0].get("Events") == "On"
    # UserEvent repeats the action's ActionID: response first, then the event
    assert [type(m).__name__ for m in by_id["userevent-5"]] == ["Response", "Event"]
    # the Status list: start, items with ActionID last and Privilege: Call, Complete
    status = by_id["status-1"]
    assert isinstance(status[0], Response) and status[0].is_list_start
    items = status[1:-1]
    assert items and all(e.name == "Status" for e in items)
    assert all(e.headers[-1] == ("ActionID", "status-1") for e in items)
    assert all(e["Privilege"] == "Call" for e in items)
    done = status[-1]
    assert isinstance(done, Event) and done.name == "StatusComplete" and done.is_list_complete
    assert done["ListItems"] == done["Items"] == str(len(items))
    csc = by_id["csc-empty"]
    assert [m.name for m in csc] == ["Success", "CoreShowChannelsComplete"]
    assert csc[1]["ListItems"] == "0"
    unknown = by_id["unknown-1"][0]
    assert unknown.name == "Error" and unknown.get("Message", "").startswith(
        "Invalid/unknown command: NoSuchAction.")
    assert by_id["noaction-1"][0].get("Message") == "Missing action in request"
    cmd = by_id["cmd-1"][0]
    assert isinstance(cmd, Response) and cmd.output == (
        "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-25 06:38:16 UTC",)
    cmd2 = by_id["cmd-2"][0]
    assert cmd2.name == "Error" and cmd2.get("Message") == "Command output follows"
    assert isinstance(cmd2, Response) and cmd2.output[0].startswith("No such command")
    bye = by_id["bye"][0]
    assert bye.name == "Goodbye" and isinstance(bye, Response) and bye.ok


def test_badlogin_capture() -> None:
    msgs = parse(raw("ami-edge-badlogin.raw"))
    assert [(m.name, m.action_id, m.get("Message")) for m in msgs[1:]] == [
        ("Error", "ping-1", "Permission denied"),
        ("Error", "status-2", "Permission denied"),
        ("Error", "login-bad", "Authentication failed"),
    ]


def test_originate_response_is_an_event() -> None:
    msgs = parse(raw("ami-originate-errors.raw"))
    orig = [m for m in msgs if m.name == "OriginateResponse"]
    assert orig and all(isinstance(m, Event) for m in orig)
    assert {m["Response"] for m in orig} <= {"Success", "Failure"}
    assert [m["Reason"] for m in orig] == ["0", "3", "0"]  # failure, no answer, failure
    assert all(m.action_id for m in orig)
    missing = [m for m in msgs if isinstance(m, Response)
               and m.get("Message") == "Extension does not exist."]
    assert missing and missing[0].name == "Error"
    abandon = parse(raw("ami-queue-abandon.raw"))
    ev = [m for m in abandon if m.name == "OriginateResponse"]
    assert len(ev) == 1 and isinstance(ev[0], Event) and ev[0]["Response"] == "Success"
    assert ev[0]["Reason"] == "4"  # answered


def test_park_stray_lf_is_tolerated() -> None:
    data = raw("ami-park-retrieve.raw")
    assert b"Park successful\n\r\n\r\n" in data
    msgs = parse(data)
    parked = [m for m in msgs if m.get("Message") == "Park successful"]
    assert len(parked) == 2 and all(isinstance(m, Response) and m.ok for m in parked)
    ev = names(msgs)
    assert ev["ParkedCall"] >= 2 and ev["UnParkedCall"] == 1 and ev["ParkedCallGiveUp"] == 1
    lots = [m for m in msgs if m.name == "ParkinglotsComplete"]
    assert lots and lots[0]["ListItems"] == "1"


def test_queue_admin_lists() -> None:
    msgs = parse(raw("ami-queue-admin.raw"))
    qs = [m for m in msgs if m.action_id == "qstatus-1"]
    assert [m.name for m in qs] == ["Success", "QueueParams", "QueueMember", "QueueMember",
                                    "QueueEntry", "QueueEntry", "QueueStatusComplete"]
    assert qs[-1]["ListItems"] == "5"
    empty = [m for m in msgs if m.action_id == "qstatus-2"]
    assert [m.name for m in empty] == ["Success", "QueueStatusComplete"]
    assert empty[-1]["ListItems"] == "0"


def test_queue_and_transfer_ordering() -> None:
    msgs = [m.name for m in parse(raw("ami-queue-abandon.raw"))]
    assert msgs.index("QueueCallerJoin") < msgs.index("QueueCallerAbandon") < msgs.index(
        "QueueCallerLeave")
    rna = parse(raw("ami-ring-no-answer.raw"))
    order = [m.name for m in rna]
    assert order.index("QueueCallerLeave") < order.index("AgentConnect")
    assert [m["RingTime"] for m in rna if m.name == "AgentRingNoAnswer"] == ["4000"]
    assert [m["Reason"] for m in rna if m.name == "AgentComplete"] == ["agent"]
    blind = [m for m in parse(raw("ami-transfer-blind.raw")) if m.name == "BlindTransfer"]
    assert len(blind) == 1 and blind[0]["Result"] == "Success" and blind[0]["IsExternal"] == "Yes"
    att = [m for m in parse(raw("ami-transfer-atxfer.raw")) if m.name == "AttendedTransfer"]
    assert att and att[0]["DestType"] == "Bridge"
    assert not [m for m in parse(raw("ami-transfer-redirect.raw")) if "Transfer" in m.name]


def test_shutdown_captures() -> None:
    obs = parse(raw("ami-shutdown-observer.raw"))
    assert obs[-1].name == "Shutdown"
    assert obs[-1]["Shutdown"] == "Cleanly" and obs[-1]["Restart"] == "False"
    stopper = parse(raw("ami-shutdown.raw"))
    assert "Shutdown" not in names(stopper)
    cli = parse(raw("ami-shutdown-cli-with-call.raw"))
    order = [m.name for m in cli]
    assert order[-1] == "Shutdown" and "Hangup" in order


def test_repeated_keys_kept_in_order() -> None:
    data = (b"Event: VarSet\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n"
            b"Variable: x\r\nChanVariable: C=3\r\n\r\n")
    conn = AMIConnection(Role.CLIENT)
    conn._expect_banner = False
    conn.receive_data(data)
    ev = conn.next_event()
    assert isinstance(ev, Event)
    assert ev.get_all("ChanVariable") == ["A=1", "B=2", "C=3"]
    assert ev["chanvariable"] == "A=1"
    assert ev.as_dict()["ChanVariable"] == ["A=1", "B=2", "C=3"]
    assert [k for k, _ in ev.headers] == ["Event", "ChanVariable", "ChanVariable", "Variable",
                                          "ChanVariable"]


# ---- framing edge cases ----------------------------------------------------------------------


def test_banner_without_blank_line_is_delivered_before_any_frame() -> None:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nResp")
    assert conn.next_event() == Banner("Asterisk Call Manager/11.0.0", "11.0.0")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"onse: Success\r\n\r\n")
    msg = conn.next_event()
    assert isinstance(msg, Response) and msg.name == "Success"


def test_bare_lf_stream() -> None:
    data = raw("ami-edge.raw").replace(b"\r\n", b"\n")
    assert parse(data) == parse(raw("ami-edge.raw"))


def test_utf8_split_across_reads() -> None:
    data = "Event: UserEvent\r\nNote: café ☎\r\n\r\n".encode()
    cut = data.index("☎".encode()) + 1
    conn = AMIConnection()
    conn._expect_banner = False
    conn.receive_data(data[:cut])
    assert conn.next_event() is NEED_DATA
    conn.receive_data(data[cut:])
    ev = conn.next_event()
    assert isinstance(ev, Event) and ev["Note"] == "café ☎"


def test_old_style_command_follows() -> None:
    data = (b"Asterisk Call Manager/1.1\r\n"
            b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
            b"Verbosity: 3\n\nline two\n--END COMMAND--\r\n\r\n"
            b"Event: FullyBooted\r\nStatus: ok\r\n\r\n")
    for msgs in (parse(data), parse(data, chunks=[1] * len(data))):
        resp = msgs[1]
        assert isinstance(resp, Response) and resp.name == "Follows" and resp.ok
        assert resp.action_id == "c1" and resp["Privilege"] == "Command"
        assert resp.output == ("Verbosity: 3", "line two")
        assert msgs[2].name == "FullyBooted"


def test_frame_size_limit_is_a_remote_error() -> None:
    conn = AMIConnection(max_frame_size=1024)
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: Big\r\nData: " + b"x" * 2000)
    assert isinstance(conn.next_event(), Banner)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):  # stays broken
        conn.next_event()
    complete = AMIConnection(max_frame_size=1024)
    complete.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: Big\r\nData: "
                          + b"x" * 2000 + b"\r\n\r\nEvent: Small\r\n\r\n")
    assert isinstance(complete.next_event(), Banner)
    with pytest.raises(RemoteProtocolError):
        complete.next_event()


def test_messages_before_an_error_are_delivered_first() -> None:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\nhello world\r\n\r\n")
    assert isinstance(conn.next_event(), Banner)
    assert conn.next_event().name == "A"  # type: ignore[union-attr]
    with pytest.raises(RemoteProtocolError, match="without any header"):
        conn.next_event()


def test_garbage_headers_without_event_or_response() -> None:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nFoo: bar\r\n\r\n")
    conn.next_event()
    with pytest.raises(RemoteProtocolError, match="neither Event nor Response"):
        conn.next_event()


def test_eof_in_the_middle_of_a_message() -> None:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: Half\r\n")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Banner)
    with pytest.raises(RemoteProtocolError, match="closed in the middle"):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"more")


def test_clean_eof() -> None:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\n")
    conn.receive_data(b"")
    assert [m.name for m in conn.events()] == ["Banner", "A"]
    assert conn.next_event() == ConnectionClosed()


def test_fast_built_messages_equal_constructed_ones() -> None:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a1\r\n"
                      b"Message: ok\r\n\r\nEvent: X\r\nK: v\r\n\r\n")
    msgs = list(conn.events())
    assert msgs[1] == Response("Success", (("Response", "Success"), ("ActionID", "a1"),
                                           ("Message", "ok")), "a1")
    assert msgs[2] == Event("X", (("Event", "X"), ("K", "v")))
    assert hash(msgs[2]) == hash(Event("X", (("Event", "X"), ("K", "v"))))
    assert msgs[1].action_id == "a1" and msgs[2].action_id is None and msgs[2].body == ()


# ---- encoding --------------------------------------------------------------------------------


def test_action_encoding_and_escaping() -> None:
    action = make_action("Originate", action_id="o1", Channel="Local/2001@agents", Async=True,
                         Timeout=30000, variables={"A": "1", "B": "x=y"})
    assert encode_action(action) == (
        b"Action: Originate\r\nActionID: o1\r\nChannel: Local/2001@agents\r\nAsync: true\r\n"
        b"Timeout: 30000\r\nVariable: A=1\r\nVariable: B=x=y\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="CR/LF"):
        encode_action(make_action("Command", Command="core stop now\r\nAction: Logoff"))
    with pytest.raises(LocalProtocolError):
        encode_action(make_action("Ping", {"Bad: key": "v"}))
    client = AMIConnection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(make_event("Nope"))
    with pytest.raises(LocalProtocolError):
        AMIConnection(Role.SERVER).send(make_action("Ping"))


def test_server_role_parses_actions() -> None:
    server = AMIConnection(Role.SERVER)
    server.receive_data(b"Action: Login\r\nActionID: l1\r\nUsername: cc\r\nSecret: s\r\n\r\n"
                        b"ActionID: noaction-1\r\nFoo: bar\r\n\r\n")
    login = server.next_event()
    assert isinstance(login, Action) and login.name == "Login" and login.action_id == "l1"
    other = server.next_event()
    assert isinstance(other, Action) and other.name == "" and other["Foo"] == "bar"


# ---- properties ------------------------------------------------------------------------------

STREAMS = ["ami-edge.raw", "ami-park-retrieve.raw", "ami-originate-errors.raw",
           "ami-shutdown-observer.raw"]


@FAST
@given(name=st.sampled_from(STREAMS), data=st.data())
def test_any_chunking_gives_the_same_messages(name: str, data: st.DataObject) -> None:
    stream = raw(name)
    if name == "ami-edge.raw":
        stream = stream[:4000]
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=60))))
    sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    assert parse(stream, chunks=sizes, eof=False) == parse(stream, eof=False)


@FAST
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), max_size=20))
def test_random_bytes_never_crash(blob: bytes, sizes: list[int]) -> None:
    for prefix in (b"", b"Asterisk Call Manager/11.0.0\r\n"):
        conn = AMIConnection(max_frame_size=256)
        data = prefix + blob
        pos = 0
        try:
            for size in [*sizes, len(data)]:
                if pos >= len(data):
                    break
                conn.receive_data(data[pos:pos + size])
                pos += size
                for msg in conn.events():
                    assert isinstance(msg, (Banner, Response, Event))
            conn.receive_data(b"")
            list(conn.events())
            assert conn.next_event() == ConnectionClosed()
        except RemoteProtocolError:
            pass


header_key = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n:"),
                     min_size=1, max_size=12)
header_value = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                       max_size=30)


@FAST
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
               min_size=1, max_size=12),
       st.lists(st.tuples(header_key, header_value), max_size=8),
       st.one_of(st.none(), st.text("abc-123", min_size=1, max_size=8)))
def test_encode_then_decode_is_identity(name: str, fields: list[tuple[str, str]],
                                        action_id: str | None) -> None:
    fields = [(k, v) for k, v in fields if k not in ("Action", "ActionID", "Event", "Response")
              and not k.startswith("Asterisk Call Manager/")]
    # actions: client -> server
    action = make_action(name, fields, action_id=action_id)
    server = AMIConnection(Role.SERVER)
    server.receive_data(AMIConnection(Role.CLIENT).send(action))
    assert server.next_event() == action
    # events and responses: server -> client
    event = make_event(name, fields, action_id=action_id)
    response = make_response(name, fields, action_id=action_id)
    client = AMIConnection(Role.CLIENT)
    client.receive_data(b"Asterisk Call Manager/11.0.0\r\n")
    client.receive_data(server.send(event) + server.send(response))
    assert list(client.events()) == [Banner("Asterisk Call Manager/11.0.0", "11.0.0"),
                                     event, response]


# ---- lazily split messages ---------------------------------------------------------------------


def _one(frame: bytes) -> Event | Response:
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\n" + frame)
    conn.next_event()  # the banner
    msg = conn.next_event()
    assert isinstance(msg, Event | Response)
    return msg


def test_lazy_message_reads_keys_straight_from_the_text_and_equals_an_eager_one():
    msg = _one(b"Event: Newchannel\r\nPrivilege: call,all\r\nUniqueID: 17.1\r\n"
               b"ActionID: a-1\r\nVariable: x=1\r\nVariable: y=2\r\nAccountCode: \r\n\r\n")
    assert msg.name == "Newchannel"
    assert msg.get("Privilege") == "call,all"
    assert msg.get("Uniqueid") == "17.1"  # case-insensitively, as before
    assert msg.get("AccountCode") == "" and msg.get("Missing") is None
    assert msg.get("Event") == "Newchannel"
    assert msg.action_id == "a-1"
    assert msg.get_all("Variable") == ["x=1", "y=2"]
    eager = Event("Newchannel", (("Event", "Newchannel"), ("Privilege", "call,all"), ("UniqueID", "17.1"),
                                 ("ActionID", "a-1"), ("Variable", "x=1"), ("Variable", "y=2"),
                                 ("AccountCode", "")), "a-1")
    assert msg == eager and hash(msg) == hash(eager)


def test_lazy_message_keeps_non_header_lines_in_the_body():
    msg = _one(b"Response: Success\r\nMessage: ok\r\nsome raw line\r\n\r\n")
    assert isinstance(msg, Response) and msg.ok
    assert msg.body == ("some raw line",)
    assert msg.headers == (("Response", "Success"), ("Message", "ok"))
    assert msg.action_id is None


def test_a_bare_lf_frame_among_crlf_frames_is_still_split():
    conn = AMIConnection()
    conn.receive_data(b"Asterisk Call Manager/11.0.0\r\n"
                      b"Response: Success\r\nMessage: Park successful\n\r\n\r\n"
                      b"Event: ParkedCall\r\nParkingSpace: 701\r\n\r\n")
    msgs = list(conn.events())
    assert isinstance(msgs[0], Banner)
    assert [m.name for m in msgs[1:]] == ["Success", "ParkedCall"]
    assert msgs[1].get("Message") == "Park successful" and msgs[2].get("ParkingSpace") == "701"


# ---- mutation fuzzing (tests/fuzz, `make fuzz`): real captures with bytes flipped, cut, repeated -----

@st.composite
def _mutated_capture(draw: st.DrawFn) -> bytes:
    data = bytearray(raw(draw(st.sampled_from(STREAMS)))[:6000])
    for _ in range(draw(st.integers(1, 10))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if op == "flip" and data:
            data[at] = draw(st.sampled_from([0, 10, 13, 58, 32, 0xFF, 0xC3]))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b": ", b"ActionID: ",
                                                b"EventList: start\r\n",
                                                b"Response: Follows\r\n", b"--END COMMAND--\r\n", b"\x00"]))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 100))]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 200))] * draw(st.integers(1, 30))
    return bytes(data)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=_mutated_capture(), sizes=st.lists(st.integers(1, 512), max_size=30))
def test_mutated_captures_give_messages_or_a_protocol_error(stream: bytes, sizes: list[int]) -> None:
    conn = AMIConnection(max_frame_size=4096)
    try:
        pos = 0
        for size in [*sizes, len(stream)]:
            if pos >= len(stream):
                break  # (an empty chunk would be the EOF)
            conn.receive_data(stream[pos:pos + size])
            pos += size
            for msg in conn.events():
                assert isinstance(msg, (Banner, Response, Event))
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in msg.headers)
        conn.receive_data(b"")
        list(conn.events())
    except RemoteProtocolError as e:
        assert str(e)  # the peer broke the protocol: said so, and the connection is done
