"""`callcenter run --workers 2`: two processes serve, a killed one is started again, SIGTERM stops all."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from tests.faults.cluster import free_port

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(120)


def _healthy(port: int) -> bool:
    try:
        with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _children(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def _wait(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_workers_serve_restart_and_stop(tmp_path, redis_prefix):
    url, prefix = redis_prefix
    env = {**os.environ, "CC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cc.db", "CC_REDIS_URL": url,
           "CC_REDIS_PREFIX": prefix, "CC_CHAT__DEMO_SITE_PORT": ""}
    subprocess.run([sys.executable, "-m", "callcenter.cli", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=60)
    port = free_port()
    while _healthy(port + 1):
        port = free_port()
    parent = subprocess.Popen([sys.executable, "-m", "callcenter.cli", "run", "--workers", "2", "--port",
                               str(port), "--agi-port", str(free_port()), "--no-demo"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        _wait(lambda: _healthy(port) and _healthy(port + 1))
        children = _children(parent.pid)
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGKILL)  # the parent starts it again
        _wait(lambda: len(_children(parent.pid)) == 2 and _healthy(port) and _healthy(port + 1))
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(40) == 0
        assert not _healthy(port) and not _healthy(port + 1)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
