"""Servers the fault tests own, so they can kill and restart them: a redis-server (append-only
file, fsync always), an initdb PostgreSQL cluster, and center workers (`callcenter run`) as real
subprocesses. PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as `postgres`."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("CC_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, up: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not {'up' if up else 'down'} after {timeout} s")


def available() -> str | None:
    """Why the fault tests cannot run here (None: they can)."""
    if not shutil.which("redis-server"):
        return "no redis-server"
    if not (PG_BIN / "initdb").exists():
        return f"no {PG_BIN}/initdb"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user for initdb"
    return None


class RedisServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cc-faults-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir),
             "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
        wait_port(self.port, up=False)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PgCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cc-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chmod(self.dir, 0o755)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w",
                  # no fsync (an OS crash is not simulated), but every commit reaches the WAL
                  # before it returns: a `stop -m immediate` (a crash) loses no committed write
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        wait_port(self.port)

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: like a crash (no shutdown checkpoint; recovery at the next start)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        wait_port(self.port, up=False)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 - already down
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker:
    """`callcenter run` as a subprocess; its HTTP and FastAGI ports read from its output."""

    HTTP_RE = re.compile(r"serving on http://[\d.]+:(\d+)/")
    AGI_RE = re.compile(r"FastAGI listening on [\d.]+:(\d+)")

    def __init__(self, env: dict[str, str], args: list[str], log: Path) -> None:
        self.log_path = log
        self.lines: list[str] = []
        self.http_port = 0
        self.agi_port = 0
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "run", "--host", "127.0.0.1", "--port", "0",
             "--agi-port", "0", *args],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as out:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                out.write(line)
                out.flush()
                self.lines.append(line)
                if m := self.AGI_RE.search(line):
                    self.agi_port = int(m.group(1))
                if m := self.HTTP_RE.search(line):
                    self.http_port = int(m.group(1))
                if self.agi_port and self.http_port:
                    self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self._ready.wait(timeout) or not self.http_port:
            raise RuntimeError(f"worker did not start:\n{''.join(self.lines[-40:])}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
