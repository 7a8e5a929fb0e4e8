"""The chat capacity on the shared (Redis) routing store is read in pipelined batches: opening a
widget with 2,000 agents signed in used to make one blocking Redis round trip per agent, which
stalled the event loop (scale-out: the AMI lease renewals came too late, nothing was routed)."""
from __future__ import annotations

from types import SimpleNamespace

from callcenter.channels.chat.service import ChatService
from callcenter.routing_redis import RedisStore, connect
from routing import AgentProfile, Channel, Presence
from tests.conftest import unique_name
from tests.services import need_redis


def test_chat_capacity_reads_agents_in_batches_and_stops_once_enough():
    url, prefix = need_redis(), unique_name("cc_t") + ":"
    store = RedisStore(connect(url), prefix)
    try:
        ids = [f"a{i}" for i in range(450)]
        for n, aid in enumerate(ids):
            store.add_agent(AgentProfile(aid, {"s": 5}, capacity={Channel.CHAT: 2}), 0.0)
            if n % 3 == 0:  # a third signed in
                store.set_presence(aid, Presence.READY, None, 0.0)
        trips = 0
        io = store._io

        def counting(fn):
            nonlocal trips
            trips += 1
            return io(fn)
        store._io = counting
        fake = SimpleNamespace(runner=SimpleNamespace(engine=SimpleNamespace(store=store)),
                               directory=SimpleNamespace(agents={aid: None for aid in ids}))
        assert ChatService._chat_capacity(fake) == 150 * 2
        assert trips <= 3, trips  # 450 agents: 3 batches, not 450 round trips
        trips = 0
        assert ChatService._chat_capacity(fake, enough=1) > 0 and trips == 1
        assert store.agents(["a0", "a1", "nobody"]).keys() == {"a0", "a1"}
    finally:
        r = connect(url)
        for key in r.scan_iter(match=prefix + "*", count=1000):
            r.unlink(key)
        r.close()
