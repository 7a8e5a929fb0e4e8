"""`make bench`: run every benchmark in turn; each writes bench/results/NAME.json.

    python bench/run_all.py                 # all of them (about an hour on 2 cores: the 1M seeds)
    python bench/run_all.py routing ami_parse   # some of them
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> extra arguments (crm_lookup reuses databases seeded by an earlier --keep run)
BENCHES: dict[str, list[str]] = {
    "routing": [],
    "ami_parse": [],
    "fastagi": [],
    "routing_redis": [],
    "crm_lookup": ["--keep", "--reuse"],
    "screen_pop": [],
    "email_ingest": [],
    "twilio_webhooks": [],
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    failed = []
    for name in names:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"== {name}: no such benchmark", file=sys.stderr)
            failed.append(name)
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *BENCHES.get(name, [])], cwd=HERE.parent)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if rc:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
