"""`callcenter ivr check FILE`: clear errors with node and line, non-zero exit on errors."""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from callcenter.ivr_cli import check_files, register
from tests.ivr.helpers import DEMO, FLOWS, ROOT


def test_register_adds_ivr_check_with_a_handler() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["ivr", "check", str(DEMO), "--functions", "identify_caller,account_balance"])
    assert args.func.__name__ == "cmd_ivr_check"
    assert args.func(argparse.Namespace(config_dir=ROOT / "config"), args) == 0


def test_demo_is_ok_and_found_by_name_in_the_config_dir() -> None:
    out = io.StringIO()
    assert check_files(["demo"], config_dir=ROOT / "config", out=out) == 0
    assert "ok: flow 'demo', 24 nodes, languages en, zh" in out.getvalue()


def test_errors_print_file_line_node_and_exit_1() -> None:
    out = io.StringIO()
    assert check_files([str(FLOWS / "dangling_exit.yaml"), str(DEMO)], out=out) == 1
    text = out.getvalue()
    assert (f"{FLOWS / 'dangling_exit.yaml'}:10: error: node 'start': exit 'options.1' leads to 'billing_q', "
            "which is not a node [dangling-exit]") in text
    assert "the flow must not go live" in text and "demo.yaml: ok" in text


def test_missing_sound_files_unknown_functions_and_strict(tmp_path: Path) -> None:
    out = io.StringIO()
    assert check_files([str(DEMO)], sounds=str(tmp_path), out=out) == 1
    assert "no sound file 'demo/en/welcome'" in out.getvalue()
    out = io.StringIO()
    assert check_files([str(DEMO)], functions="identify_caller", out=out) == 1
    assert "'account_balance' is not provided" in out.getvalue()
    warn = tmp_path / "warn.yaml"
    warn.write_text("flow: w\ndefault_queue: q\nentries: {main: a}\nnodes:\n  a: {type: lookup, function: f, "
                    "next: b}\n  b: {type: hangup}\n")
    assert check_files([str(warn)], out=io.StringIO()) == 0
    assert check_files([str(warn)], strict=True, out=io.StringIO()) == 1
    assert check_files([str(tmp_path / "nope.yaml")], out=io.StringIO()) == 1


def test_as_a_command() -> None:
    ok = subprocess.run([sys.executable, "-m", "callcenter.ivr_cli", "check", str(DEMO)], capture_output=True,
                        text=True, timeout=60, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    files = [str(f) for f in sorted(FLOWS.glob("*"))]
    bad = subprocess.run([sys.executable, "-m", "callcenter.ivr_cli", "check", *files],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stdout.count("must not go live") == len(list(FLOWS.glob("*")))
