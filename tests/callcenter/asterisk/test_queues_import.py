"""queues.conf import through pyst2's config parser."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcenter.asterisk.queues_import import (
    QueueImportError,
    QueueMember,
    import_queues,
)
from tests.captures import CAPTURES  # noqa: E402


def test_queues_conf_used() -> None:
    imp = import_queues(CAPTURES / "queues.conf.used")
    assert [q.name for q in imp.queues] == ["support"]
    q = imp.queue("support")
    assert (q.strategy, q.timeout, q.retry, q.wrapuptime) == ("leastrecent", 15, 1, 2)
    assert q.ringinuse is False and q.musicclass == "default" and q.joinempty == "yes"
    assert q.members == (
        QueueMember("Local/1001@agents", 0, "Agent Alice", "Local/1001@agents"),
        QueueMember("Local/1002@agents", 1, "Agent Bob", "Local/1002@agents"),
    )


def test_queues_scenarios_conf_used() -> None:
    imp = import_queues(CAPTURES / "queues-scenarios.conf.used")
    assert imp.general == {"persistentmembers": "no", "shared_lastcall": "no"}
    assert [q.name for q in imp.queues] == ["q-abandon", "q-rna", "q-spy", "q-admin"]
    rna = imp.queue("q-rna")
    assert (rna.strategy, rna.timeout, rna.retry) == ("linear", 4, 1)
    assert [(m.interface, m.penalty, m.membername) for m in rna.members] == [
        ("Local/3001@agents-noanswer", 0, "Agent NoAnswer"),
        ("Local/3002@agents", 0, "Agent Answer"),
    ]
    assert imp.queue("q-abandon").strategy == "ringall" and imp.queue("q-abandon").members == ()
    admin = imp.queue("q-admin")
    assert (admin.strategy, admin.retry, admin.announce_frequency) == ("rrmemory", 2, 0)
    assert imp.queue("q-spy").members[0].interface == "Local/4001@agents"
    data = imp.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain data
    assert data["queues"][1]["members"][1] == {
        "interface": "Local/3002@agents", "penalty": 0, "membername": "Agent Answer",
        "state_interface": "Local/3002@agents", "ringinuse": None, "wrapuptime": None,
        "paused": False}


def test_templates_includes_defaults(tmp_path: Path) -> None:
    (tmp_path / "members.conf").write_text("[sales](sales-tpl)\nmember => PJSIP/201,2\n")
    conf = tmp_path / "queues.conf"
    conf.write_text(
        "[general]\n"
        "[sales-tpl](!)\nstrategy = fewestcalls ; comment\ntimeout=20\nmember => PJSIP/200,1,Ann,,no,5,yes\n"
        "[plain]\n"
        "#include members.conf\n"
        "[old]\nstrategy = roundrobin\n"
    )
    imp = import_queues(conf)
    assert [q.name for q in imp.queues] == ["plain", "sales", "old"]
    plain = imp.queue("plain")
    assert (plain.strategy, plain.timeout, plain.retry, plain.ringinuse) == ("ringall", 15, 5, True)
    sales = imp.queue("sales")
    assert (sales.strategy, sales.timeout) == ("fewestcalls", 20)
    assert sales.members == (
        QueueMember("PJSIP/200", 1, "Ann", None, False, 5, True),
        QueueMember("PJSIP/201", 2),
    )
    assert imp.queue("old").strategy == "rrmemory"


@pytest.mark.parametrize("text", [
    "[q]\nstrategy = bogus\n",
    "[q]\ntimeout = soon\n",
    "[q]\nmember => PJSIP/1,high\n",
    "[q]\nno equals sign\n",
    "strategy = ringall\n",
    "[q](nosuch)\n",
    "[q]\n#include missing.conf\n",
])
def test_bad_files(tmp_path: Path, text: str) -> None:
    conf = tmp_path / "queues.conf"
    conf.write_text(text)
    with pytest.raises(QueueImportError):
        import_queues(conf)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(QueueImportError):
        import_queues(tmp_path / "nope.conf")
