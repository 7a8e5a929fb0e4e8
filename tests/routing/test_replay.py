from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from callcenter.replay import register
from routing import ConfigError, QueueConfig, Tier
from routing.config import parse_engine_config, parse_queue
from routing.model import OfferCallbackStep, Overflow, WidenSkills
from routing.replay import Interval, ReplayPlan, Traffic, plan_from_data, run_replay

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "replay" / "example.yaml"


def small_plan(**kw: object) -> ReplayPlan:
    base: dict[str, object] = dict(
        intervals=(Interval(60, 8), Interval(100, 12), Interval(30, 4)),
        queues={"q": QueueConfig("q", skills={"s": 1}, max_wait=600)},
        traffic=(Traffic("q"),), interval_s=1800, handle_mean_s=180, patience_mean_s=120,
        tiers={Tier.VIP: 0.1, Tier.KEY: 0.2, Tier.REGULAR: 0.7}, seed=3,
    )
    base.update(kw)
    return ReplayPlan(**base)  # type: ignore[arg-type]


def test_replay_reports_and_conserves_contacts() -> None:
    r = run_replay(small_plan())
    assert r.contacts > 150
    assert r.answered + r.abandoned + r.timed_out + r.called_back == r.contacts
    assert 0 < r.abandonment < 0.5 and 0 < r.occupancy <= 1 and 0 <= r.service_level <= 1
    assert set(r.per_tier) == {"vip", "key", "regular"}
    # VIPs wait less than regulars
    assert r.per_tier["vip"]["mean_wait_s"] < r.per_tier["regular"]["mean_wait_s"]
    assert len(r.per_interval) == 3


def test_replay_is_deterministic_and_lognormal() -> None:
    a = run_replay(small_plan(handle_dist="lognormal"))
    b = run_replay(small_plan(handle_dist="lognormal"))
    assert a.to_dict() == b.to_dict()


def test_progress_callback() -> None:
    seen: list[int] = []
    r = run_replay(small_plan(), progress=seen.append)
    assert sum(seen) >= r.contacts


def test_example_plan_parses_and_runs() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    plan = plan_from_data(data, intervals=tuple(Interval(iv.arrivals / 10, max(1, iv.agents // 5))
                                                for iv in plan_from_data(data).intervals[:4]))
    r = run_replay(plan)
    assert r.contacts > 0


def test_bad_plans() -> None:
    with pytest.raises(ConfigError):
        small_plan(intervals=())
    with pytest.raises(ConfigError):
        small_plan(handle_dist="uniform")
    with pytest.raises(ConfigError):
        plan_from_data({"intervals": [{"arrivals": 1}]})
    with pytest.raises(ConfigError):
        parse_queue({"name": "x", "strategy": "random"})
    with pytest.raises(ConfigError):
        parse_queue({"name": "x", "escalation": [{"after": 1, "dance": True}]})


def test_parse_queue_and_engine_config() -> None:
    q = parse_queue({"name": "billing", "skills": {"billing": 5}, "escalation": [
        {"after": 30, "widen_skills": {"lower_by": 2, "alternatives": [{"general": 3}]}},
        {"after": 60, "overflow": "general"}, {"after": 90, "offer_callback": True}]})
    assert isinstance(q.escalation[0], WidenSkills) and q.escalation[0].alternatives == ({"general": 3},)
    assert isinstance(q.escalation[1], Overflow) and isinstance(q.escalation[2], OfferCallbackStep)
    cfg = parse_engine_config({"queues": [{"name": "general"}, {"name": "billing", "escalation": [
        {"after": 60, "overflow": "general"}]}], "mixing": {"capacity": {"chat": 2}},
        "priority": {"tier_weights": {"vip": 300}}})
    assert cfg.mixing.capacity["chat"] == 2 and cfg.priority.tier_weights[Tier.VIP] == 300


def run_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    register(sub)
    args = p.parse_args(argv)
    return int(args.func(None, args))


def test_cli_options_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    rc = run_cli(["replay", "--intervals", "2", "--arrivals", "200", "--agents", "6", "--aht", "120",
                  "--patience", "90", "--quiet", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Service level" in text and "ASA" in text and "regular" in text
    data = json.loads(out.read_text())
    assert data["contacts"] > 0 and "per_tier" in data


def test_cli_yaml_file(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_cli(["replay", "--plan", str(EXAMPLE), "--scale", "0.05", "--quiet", "--json", "-"])
    assert rc == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["contacts"] > 0


def test_cli_bad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("intervals: [{arrivals: 1}]\n")
    assert run_cli(["replay", "--plan", str(bad), "--quiet"]) == 2
    assert "replay" in capsys.readouterr().err
