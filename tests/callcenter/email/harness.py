"""A running center with the email channel: the real app on port 0, its SMTP listener on port 0,
an aiosmtpd sink as the smarthost, and (for IMAP) a real Dovecot started per test."""
from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP

from callcenter.app import build_store, init_app
from callcenter.bootstrap import load_seed, seed_catalog
from callcenter.channels.email.service import EmailService
from callcenter.channels.email.setup import EMAIL, EMAIL_SMTP
from callcenter.keys import CENTER
from callcenter.services.center import Center
from callcenter.settings import load_settings
from crm_core.db import Database
from crm_core.errors import NotFound
from crm_core.store import CrmStore
from tests.http import serve
from tests.services import REQUIRE, need

DOVECOT = os.environ.get("CC_TEST_DOVECOT", "/usr/sbin/dovecot")
SUPPORT = "support@example.com"


@dataclass
class Sink:
    """An aiosmtpd server standing in for the smarthost: every message it takes, parsed."""

    port: int = 0
    messages: asyncio.Queue[tuple[str, list[str], EmailMessage]] = field(default_factory=asyncio.Queue)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "554 5.7.1 refused by the test"
        msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        self.messages.put_nowait((envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    async def next(self, timeout: float = 15.0) -> tuple[str, list[str], EmailMessage]:
        return await asyncio.wait_for(self.messages.get(), timeout)


@asynccontextmanager
async def sink_server() -> AsyncIterator[Sink]:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="sink.test"), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class EmailCenter:
    base: str
    app: web.Application
    center: Center
    email: EmailService
    store: CrmStore
    smtp_port: int
    sink: Sink

    def send(self, msg: EmailMessage | bytes, *, mail_from: str = "ann@example.org",
             to: tuple[str, ...] = (SUPPORT,)) -> dict[str, Any]:
        """smtplib (blocking: call through asyncio.to_thread) to the center's listener."""
        data = msg.as_bytes(policy=policy.SMTP) if isinstance(msg, EmailMessage) else msg
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=20) as s:
            return s.sendmail(mail_from, list(to), data)


async def seed(store: CrmStore, agents: int = 1, capacity: int = 2) -> None:
    data = {k: v for k, v in load_seed(load_settings(env={})).items() if k != "admin"}
    await seed_catalog(store, data)
    for i in range(1, agents + 1):
        try:
            await store.get_user(f"agent{i}")
            continue  # a second start on the same database
        except NotFound:
            pass
        await store.create_user(f"agent{i}", "agent-password", roles=["agent"], display_name=f"Agent {i}",
                                extension=str(1000 + i), skills={"email": 5, "billing": 5},
                                capacities={"voice": 1, "chat": 0, "email": capacity})


@asynccontextmanager
async def email_center(database: Database, tmp: Path, *, agents: int = 1, capacity: int = 2,
                       **env: str) -> AsyncIterator[EmailCenter]:
    """Seeds the catalog and `agents` agents with the email skill, then starts the app."""
    await seed(build_store(load_settings(env={}), database), agents, capacity)
    async with sink_server() as sink:
        settings = load_settings(env={
            "CC_EMAIL__ENABLED": "true", "CC_EMAIL__SMTP_PORT": "0", "CC_EMAIL__ADDRESS": SUPPORT,
            "CC_EMAIL__ACCEPT_DOMAINS": "help.example.com",
            "CC_EMAIL__SMARTHOST_PORT": str(sink.port), "CC_EMAIL__ATTACHMENTS_DIR": str(tmp / "mail"),
            "CC_VOICE__RECORDINGS_DIR": str(tmp / "rec"), **env})
        app = init_app(settings, database=database)
        async with serve(app) as base:
            port = app[EMAIL_SMTP].sockets[0].getsockname()[1] if EMAIL_SMTP in app else 0
            # the center's own store: on SQLite a store's group commit keeps the one writer connection
            center = app[CENTER]
            yield EmailCenter(base, app, center, app[EMAIL], center.store, port, sink)


def mail(subject: str = "My invoice", body: str = "Hello, my invoice is wrong.", *,
         sender: str = "Ann Customer <ann@example.org>", to: str = SUPPORT, **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@customer.test>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


# --------------------------------------------------------------------------- Dovecot
@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    root: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_dovecot() -> str:
    need("Dovecot", os.path.exists(DOVECOT), f"{DOVECOT} is missing; apt-get install -y dovecot-imapd")
    return DOVECOT


@contextmanager
def dovecot() -> Iterator[Dovecot]:
    """A real Dovecot IMAP server on a free loopback port, its own config and maildir, for one test.
    Mail is stored as `nobody`, so the directory is world-traversable (not under pytest's tmp)."""
    binary = need_dovecot()
    root = Path(tempfile.mkdtemp(prefix="cc-dovecot-"))
    os.chmod(root, 0o755)
    port = _free_port()
    for d in ("mail", "home"):
        (root / d).mkdir()
        shutil.chown(root / d, "nobody", "nogroup")
    (root / "passwd").write_text("support:{PLAIN}imap-secret\n")
    (root / "dovecot.conf").write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
""")
    proc = subprocess.Popen([binary, "-F", "-c", str(root / "dovecot.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    msg = f"Dovecot did not start: {err[:500]}"
                    if REQUIRE:
                        raise RuntimeError(msg) from None
                    import pytest
                    pytest.skip(msg)
                time.sleep(0.05)
        yield Dovecot(port, "support", "imap-secret", root)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
