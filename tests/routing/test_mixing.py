from __future__ import annotations

import pytest

from routing import Channel, ConfigError, MixingRules, can_take
from routing.model import DEFAULT_MIXING
from tests.routing.conftest import agent, arrive, offered_pairs

V, C, E = Channel.VOICE, Channel.CHAT, Channel.EMAIL


def load(v: int = 0, c: int = 0, e: int = 0) -> dict[Channel, int]:
    return {V: v, C: c, E: e}


@pytest.mark.parametrize(
    ("current", "channel", "ok"),
    [
        (load(), V, True), (load(), C, True), (load(), E, True),
        (load(v=1), V, False), (load(v=1), C, False), (load(v=1), E, False),  # voice blocks all
        (load(c=1), V, False), (load(e=1), V, False),  # any chat/email blocks voice
        (load(c=2), C, True), (load(c=3), C, False),  # chat up to 3
        (load(c=3), E, True), (load(c=3, e=4), E, True), (load(c=3, e=5), E, False),  # side by side
    ],
)
def test_default_mixing(current: dict[Channel, int], channel: Channel, ok: bool) -> None:
    assert can_take(current, channel, DEFAULT_MIXING) is ok


def test_configurable_mixing_and_capacity_override() -> None:
    rules = MixingRules(capacity={V: 1, C: 2, E: 2}, blocked_by={V: frozenset({V}), C: frozenset({E}),
                                                                  E: frozenset({C})}, max_total=2)
    assert can_take(load(c=1), V, rules)  # chat no longer blocks voice
    assert not can_take(load(c=1), E, rules)  # but chat and email exclude each other
    assert not can_take(load(v=1, c=1), C, rules)  # max_total
    assert can_take(load(c=2), C, rules, capacity={V: 1, C: 4, E: 0}) is False  # max_total still
    assert not can_take(load(), E, DEFAULT_MIXING, capacity={V: 1, C: 3, E: 0})


def test_bad_rules_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        MixingRules(capacity={V: -1, C: 3, E: 5})
    with pytest.raises(ConfigError):
        MixingRules(max_total=-1)


def test_engine_applies_mixing(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1")
    pairs = []
    for i in range(4):
        pairs += offered_pairs(arrive(e, f"chat{i}", 1.0 + i, channel=C))
    assert pairs == [("chat0", "a1"), ("chat1", "a1"), ("chat2", "a1")]  # capacity 3
    assert offered_pairs(arrive(e, "email0", 10, channel=E)) == [("email0", "a1")]
    assert offered_pairs(arrive(e, "voice0", 11)) == []  # chats open: no voice
    rec = e.store.agent("a1")
    assert rec is not None and rec.load == {V: 0, C: 3, E: 1}


def test_voice_blocks_everything(make_engine) -> None:  # type: ignore[no-untyped-def]
    e = make_engine()
    agent(e, "a1")
    assert offered_pairs(arrive(e, "v", 1)) == [("v", "a1")]
    assert offered_pairs(arrive(e, "c", 2, channel=C)) == []
    assert offered_pairs(arrive(e, "m", 3, channel=E)) == []
