"""``callcenter ivr check FILE...``: validate IVR flows before they go live.

Each problem is printed as ``FILE:LINE: error: node 'x': message [code]``; the exit status is 1
when any file has an error (a flow with errors is refused by the loader too), else 0.

``register(subparsers)`` adds the ``ivr`` command group to the main parser (callcenter/cli.py);
``python -m callcenter.ivr_cli check FILE`` runs it alone.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ivr.loader import check_text
from ivr.model import NODE_TYPES

__all__ = ["check_files", "cmd_ivr_check", "main", "register"]


def register(subparsers: Any) -> None:
    """Add ``ivr check`` to ``subparsers`` (the result of ``add_subparsers``)."""
    ivr = subparsers.add_parser("ivr", help="IVR flows").add_subparsers(metavar="ACTION")
    check = ivr.add_parser("check", help="validate IVR flow files (YAML)",
                           description="Validate IVR flows: unknown node types or keys, dangling exits, "
                                       "unreachable nodes, loops with no input, missing prompts.")
    check.add_argument("files", nargs="+", metavar="FILE",
                       help="flow file; a bare name is also looked up in CONFIG/ivr/")
    check.add_argument("--functions", metavar="NAMES",
                       help="comma-separated lookup functions the host provides (others are errors)")
    check.add_argument("--sounds", metavar="DIR",
                       help="check that every sound file exists under DIR (default: the prompts/ "
                            "directory next to the flow, if there is one)")
    check.add_argument("--no-sounds", action="store_true", help="do not check sound files")
    check.add_argument("--strict", action="store_true", help="warnings count as errors")
    check.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    check.set_defaults(func=cmd_ivr_check)
    types = ivr.add_parser("types", help="list the node types and their keys")
    types.set_defaults(func=cmd_ivr_types)


def _resolve(name: str, config_dir: Path | None) -> Path:
    p = Path(name)
    if p.exists() or config_dir is None or p.is_absolute():
        return p
    for cand in (config_dir / "ivr" / name, config_dir / "ivr" / f"{name}.yaml"):
        if cand.exists():
            return cand
    return p


def check_files(files: Sequence[str], *, config_dir: Path | None = None, functions: str | None = None,
                sounds: str | None = None, no_sounds: bool = False, strict: bool = False,
                quiet: bool = False, out: Any = None) -> int:
    out = out or sys.stdout
    fn = [f.strip() for f in functions.split(",") if f.strip()] if functions else None
    failed = 0
    for name in files:
        path = _resolve(name, config_dir)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: error: cannot read: {exc}", file=out)
            failed += 1
            continue
        sound_dir: Path | None = None
        if not no_sounds:
            sound_dir = Path(sounds) if sounds else path.parent / "prompts"
            if not sound_dir.is_dir():
                if sounds:
                    print(f"{path}: error: --sounds {sounds}: not a directory", file=out)
                    failed += 1
                    continue
                sound_dir = None

        def exists(fname: str, base: Path | None = sound_dir) -> bool:
            assert base is not None
            return any(base.glob(f"{fname}.*"))

        flow, issues = check_text(text, str(path), functions=fn,
                                  audio_exists=exists if sound_dir is not None else None)
        for issue in issues:
            print(issue, file=out)
        errors = sum(1 for i in issues if i.severity == "error" or strict)
        warnings = len(issues) - sum(1 for i in issues if i.severity == "error")
        if errors:
            failed += 1
            print(f"{path}: {errors} error(s), {warnings} warning(s): the flow must not go live", file=out)
        elif not quiet and flow is not None:
            print(f"{path}: ok: flow {flow.name!r}, {len(flow.nodes)} nodes, languages "
                  f"{', '.join(flow.languages)}, entries {', '.join(flow.entries)}"
                  + (f", {warnings} warning(s)" if warnings else ""), file=out)
    return 1 if failed else 0


def cmd_ivr_check(settings: Any, args: argparse.Namespace) -> int:
    config_dir = getattr(settings, "config_dir", None)
    return check_files(args.files, config_dir=Path(config_dir) if config_dir else None,
                       functions=args.functions, sounds=args.sounds, no_sounds=args.no_sounds,
                       strict=args.strict, quiet=args.quiet)


def cmd_ivr_types(settings: Any, args: argparse.Namespace) -> int:
    for name, spec in NODE_TYPES.items():
        req = ", ".join(sorted(spec.required)) or "-"
        opt = ", ".join(sorted(spec.optional - {"type", "description"})) or "-"
        flags = " (terminal)" if spec.terminal else ""
        print(f"{name}{flags}\n  required: {req}\n  optional: {opt}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter")
    register(parser.add_subparsers(metavar="COMMAND"))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["ivr"]:
        argv.insert(0, "ivr")
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(None, args))


if __name__ == "__main__":
    sys.exit(main())
