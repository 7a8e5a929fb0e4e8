"""The shipped config/asterisk/manager.conf follows least privilege: its `read` classes are the
events the center asks for at login, and its `write` classes are exactly those that the AMI
actions the center sends need (each class needed by at least one action; none of all, command,
config). The actions are found by reading the code, so a new action must be classified here.

Write classes per action as Asterisk 22 registers them (manager.c, app_queue.c, app_mixmonitor.c,
bridge.c, ...): an action is allowed when the user has ANY of its classes; an empty set needs none.
"""
from __future__ import annotations

import re
from pathlib import Path

from callcenter.telephony import AMI_EVENT_CLASSES

ROOT = Path(__file__).resolve().parents[2]
WRITE_CLASSES: dict[str, set[str]] = {
    "Login": set(), "Logoff": set(), "Ping": set(), "Events": set(), "Challenge": set(),
    "QueueStatus": set(),
    "Originate": {"originate"},
    "Redirect": {"call"}, "Setvar": {"call"}, "Bridge": {"call"}, "PlayDTMF": {"call"},
    "Atxfer": {"call"}, "BlindTransfer": {"call"}, "Hangup": {"system", "call"},
    "MixMonitor": {"system"}, "StopMixMonitor": {"system", "call"},
    "QueueAdd": {"agent"}, "QueueRemove": {"agent"}, "QueuePause": {"agent"},
    "CoreShowChannels": {"system", "reporting"}, "Status": {"system", "call", "reporting"},
}
NEVER = {"all", "command", "config"}
_ACTION = re.compile(r"""(?:make_action|send_action|\.action)\(\s*["']([A-Z]\w+)["']""")
_AMI_HELPER = re.compile(r"""_ami\(\s*\w+,\s*["'][^"']*["'],\s*["']([A-Z]\w+)["']""")


def parse_conf(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current.setdefault(key.strip().rstrip(">").strip(), []).append(value.strip())
    return sections


def actions_the_center_sends() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "callcenter").rglob("*.py"):
        if "simulator" in path.parts or path.name == "ami_client.py":  # the PBX; the client library
            continue
        text = path.read_text()
        found |= set(_ACTION.findall(text)) | set(_AMI_HELPER.findall(text))
    # the client itself sends these (login, keep-alive, event mask, resync); Command is offered but unused
    return found | {"Login", "Logoff", "Ping", "Events", "CoreShowChannels"}  # resync after a login


def test_the_center_uses_no_unclassified_action() -> None:
    used = actions_the_center_sends()
    assert {"Originate", "Redirect", "Hangup", "QueueAdd", "MixMonitor"} <= used  # the scan works
    unknown = sorted(used - set(WRITE_CLASSES))
    assert not unknown, f"classify these AMI actions (their write class in Asterisk): {unknown}"
    assert "Command" not in used  # a CLI command over AMI would need the 'command' class


def test_manager_conf_is_least_privilege() -> None:
    conf = parse_conf(ROOT / "config/asterisk/manager.conf")
    general, user = conf["general"], conf["callcenter"]
    assert general["bindaddr"] == ["127.0.0.1"] and general["displayconnects"] == ["no"]
    assert int(general["authlimit"][0]) <= 50 and int(general["authtimeout"][0]) <= 30
    assert user["deny"] == ["0.0.0.0/0.0.0.0"] and user["permit"] == ["127.0.0.1/255.255.255.255"]
    assert "change-me" in user["secret"][0]  # a placeholder, never a real secret in the repo
    read = set(user["read"][0].split(","))
    write = set(user["write"][0].split(","))
    assert not (read | write) & NEVER
    # read: exactly the event classes the center asks for at login
    assert read == set(AMI_EVENT_CLASSES.split(","))
    # write: every action the center sends is allowed ...
    used = actions_the_center_sends()
    for action in sorted(used):
        need = WRITE_CLASSES[action]
        assert not need or need & write, f"{action} needs one of {sorted(need)}; write = {sorted(write)}"
    # ... and every class is needed: without it some action would be refused
    for cls in sorted(write):
        rest = write - {cls}
        assert any(WRITE_CLASSES[a] and not WRITE_CLASSES[a] & rest for a in used), \
            f"write class {cls!r} is not needed by any action the center sends"
