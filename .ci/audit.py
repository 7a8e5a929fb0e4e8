"""Dependency audit for CI: `pip-audit` over the installed environment (our own package skipped).

Fails on any known vulnerability. The vulnerability data comes from PyPI's JSON API (pip-audit's
default service), else from OSV. On a machine that reaches neither (a mirror without the JSON
API, no route to api.osv.dev), nothing can be checked: the audit says so and does not fail the
run; the packages left unaudited are listed. Usage: .venv/bin/python .ci/audit.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
# vulnerabilities accepted for now, one ID a line with the reason after '#' (reviewed when touched)
IGNORE = Path(__file__).with_name("audit-ignore.txt")


def ignored() -> list[str]:
    if not IGNORE.exists():
        return []
    ids = [line.split("#", 1)[0].strip() for line in IGNORE.read_text().splitlines()]
    return [arg for vid in ids if vid for arg in ("--ignore-vuln", vid)]


def run(service: str) -> tuple[dict | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        proc = subprocess.run(
            [str(BIN / "pip-audit"), "--local", "--skip-editable", "--progress-spinner", "off",
             "--timeout", "20", "--vulnerability-service", service, "--format", "json", "--output", str(out),
             *ignored()],
            capture_output=True, text=True, timeout=600)
        if not out.exists():  # the service could not be reached at all
            return None, (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return json.loads(out.read_text()), ""


def main() -> int:
    for service in ("pypi", "osv"):
        report, error = run(service)
        if report is None:
            print(f"== pip-audit ({service}): unreachable: {error[:200]}")
            continue
        deps = report.get("dependencies", [])
        vulnerable = [(d["name"], d.get("version"), v["id"]) for d in deps for v in d.get("vulns", [])]
        audited = [d for d in deps if "skip_reason" not in d]
        if vulnerable:
            for name, version, vid in vulnerable:
                print(f"== pip-audit ({service}): {name} {version}: {vid}")
            return 1
        if audited:
            print(f"== pip-audit ({service}): {len(audited)} packages audited, no known vulnerability"
                  f" ({len(deps) - len(audited)} not found on the service)")
            return 0
        print(f"== pip-audit ({service}): none of {len(deps)} packages could be looked up")
    print("== pip-audit: no vulnerability service reachable from this machine: audit skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
