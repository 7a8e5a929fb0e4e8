"""Classic (non-Fast) AGI: Asterisk runs one process per call and talks over stdin/stdout.

pyst2's :class:`asterisk.agi.AGI` does what it is good at here: it reads the ``agi_*``
environment from stdin and installs the SIGHUP handler (Asterisk signals a classic AGI process
when the caller hangs up). The call is then handed to the very same :class:`AgiSession` and
handlers as FastAGI: pyst2's parsed env becomes our :class:`AgiEnv`, and the session speaks
through our codec, because pyst2's ``get_result`` is lossy (``HANGUP`` lines, 520 blocks,
``result=-1`` turned into exceptions).

Routing: ``AGI(callcenter-agi,ivr?lang=en,first arg)`` where ``agi-bin/callcenter-agi`` is::

    #!/bin/sh
    exec /opt/callcenter/.venv/bin/callcenter agi "$@"

The first argument names the handler (``ivr``, query ``lang=en``), the rest are its args.

Exit status: 0 when the handler returned (or the caller hung up); 1 and a ``FAILURE`` line for
an unknown script or a handler error, so Asterisk sets ``AGISTATUS=FAILURE``.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from asterisk.agi import AGI, AGISIGHUPHangup

from callcenter.asterisk.agi import AgiConnection, AgiEnv
from callcenter.asterisk.fastagi import AgiHandler, AgiHangupError, AgiRoute, AgiSession

__all__ = ["main", "run_classic_agi"]

log = logging.getLogger(__name__)


class _LogWriter:
    """A text stream for pyst2's chatter (it writes ARGS/ENV lines to stderr): to logging."""

    def write(self, text: str) -> int:
        text = text.rstrip()
        if text:
            log.debug("pyst2: %s", text)
        return len(text)

    def flush(self) -> None:
        pass


def _reader(stream: IO[bytes], loop: asyncio.AbstractEventLoop,
            feed: Callable[[bytes], None]) -> None:
    read = getattr(stream, "read1", stream.read)
    while True:
        try:
            data = read(65536)
        except (OSError, ValueError):
            data = b""
        try:
            loop.call_soon_threadsafe(feed, data or b"")
        except RuntimeError:  # the loop is closed: the call is over
            return
        if not data:
            return


async def _run(handler: AgiHandler, session: AgiSession, stdin: IO[bytes]) -> int:
    loop = asyncio.get_running_loop()
    # A daemon thread: a blocked read never keeps the process alive after the call.
    threading.Thread(target=_reader, args=(stdin, loop, session.feed), daemon=True,
                     name="agi-stdin").start()
    try:
        await handler(session)
    except AgiHangupError as exc:
        log.debug("classic AGI %s: caller gone (%s)", session.route.script, exc)
    except Exception:
        log.exception("classic AGI handler %r failed", session.route.script)
        return 1
    return 0


def run_classic_agi(
    handlers: Mapping[str, AgiHandler],
    *,
    script: str | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
) -> int:
    """Serve one classic AGI call on stdin/stdout; returns the process exit status.

    ``script`` forces the handler (``"ivr?lang=en"``); by default the first AGI argument names
    it. Must run in the main thread (pyst2 installs a SIGHUP handler).
    """
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    agi = AGI(stdin=stdin, stdout=stdout, stderr=_LogWriter())
    env = AgiEnv.from_pairs((str(k), str(v)) for k, v in agi.env.items())
    route = AgiRoute.from_spec(script, env.args) if script else AgiRoute.from_env(env)
    handler = handlers.get(route.script)
    if handler is None:
        log.warning("classic AGI: unknown script %r (args %r)", route.script, env.args)
        write(b"FAILURE\n")
        return 1

    def sighup() -> bool:
        try:
            agi.test_hangup()
        except AGISIGHUPHangup:
            return True
        return False

    conn = AgiConnection(env=env)
    session = AgiSession(conn, write, route=route, hangup_probe=sighup)
    status = asyncio.run(_run(handler, session, stdin))
    if status:
        try:
            write(b"FAILURE\n")
        except OSError:
            pass
    return status


def load_handlers(spec: str) -> Mapping[str, AgiHandler]:
    module, _, attr = spec.partition(":")
    obj: Any = getattr(importlib.import_module(module), attr or "HANDLERS")
    if callable(obj) and not isinstance(obj, Mapping):
        obj = obj()
    if not isinstance(obj, Mapping):
        raise SystemExit(f"{spec} is not a mapping of script name -> handler")
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m callcenter.asterisk.agi_classic --handlers pkg.mod:HANDLERS [args...]``.

    Extra positional arguments are what Asterisk passes to the script; they are ignored here
    because the same values arrive as ``agi_arg_N`` in the environment.
    """
    p = argparse.ArgumentParser(prog="callcenter agi", description=__doc__.split("\n")[0])
    p.add_argument("--handlers", required=True, help="module:attribute of the handler mapping")
    p.add_argument("--script", default=None, help="handler name (default: the first AGI arg)")
    p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return run_classic_agi(load_handlers(ns.handlers), script=ns.script)


if __name__ == "__main__":
    raise SystemExit(main())
