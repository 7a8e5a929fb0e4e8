"""The wallboard's direct fan-out: one websocket frame per snapshot, and a feed that never lets an
older snapshot overtake a newer one."""
from __future__ import annotations

import asyncio

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from agent_ui.wallboard_routes import _wire
from callcenter.services.wallboard import Feed


def _parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = Frame.parse(reader.read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


def test_a_frame_of_every_length_class_parses_as_one_text_frame():
    for n in (0, 125, 126, 65535, 65536, 70000):
        payload = b"x" * n
        wire = _wire(payload)
        frame = _parse(wire)
        assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
        assert _wire(payload) is wire  # built once per snapshot


class _Service:
    def unsubscribe(self, feed: Feed) -> None:
        pass


async def test_direct_writes_wait_while_an_older_frame_is_on_its_way():
    feed = Feed(_Service(), "all", None)  # type: ignore[arg-type]
    written: list[bytes] = []
    takes = {"ok": True}

    def direct(frame: bytes) -> bool:
        if takes["ok"]:
            written.append(frame)
        return takes["ok"]

    feed.put(b"first")  # before the socket is ready: the slot
    feed.direct = direct
    frames = feed.frames()
    assert await anext(frames) == b"first"  # on its way (not sent yet)
    feed.put(b"second")  # must not overtake it
    assert written == []
    assert await asyncio.wait_for(anext(frames), 1) == b"second"
    feed.put(b"third")  # still busy with "second" until the sender asks again
    assert written == []
    assert await asyncio.wait_for(anext(frames), 1) == b"third"
    pending = asyncio.ensure_future(anext(frames))  # the sender waits: the slot is empty
    await asyncio.sleep(0)
    feed.put(b"fourth")
    assert written == [b"fourth"] and not pending.done()
    takes["ok"] = False  # a slow socket: back to the slot
    feed.put(b"fifth")
    assert await asyncio.wait_for(pending, 1) == b"fifth"
    await feed.close()
