"""The `callcenter` command line."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from callcenter.ivr_cli import register as register_ivr
from callcenter.replay import register as register_replay
from callcenter.reports_cli import register as register_reports
from callcenter.settings import Settings, SettingsError, load_settings
from callcenter.sim_cli import register as register_sim


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=os.environ.get("CC_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(args.config)
    except SettingsError as e:
        print(f"callcenter: {e}", file=sys.stderr)
        return 2
    try:
        return int(args.func(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except (CliError, SettingsError) as e:
        print(f"callcenter: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        from crm_core.errors import CrmError

        if isinstance(e, CrmError):
            print(f"callcenter: {e}", file=sys.stderr)
            return 1
        raise


class CliError(Exception):
    """A user-facing failure with a one-line explanation."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callcenter", description="Open-source contact center.")
    p.add_argument("--config", help="configuration directory (default: ./config or CC_CONFIG_DIR)")
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="start the server")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--ami", metavar="HOST:PORT", help="a real Asterisk's manager interface")
    run.add_argument("--ami-user", help="manager user (default: settings ami.username)")
    run.add_argument("--ami-secret-file", help="file holding the manager secret (or CC_AMI__SECRET)")
    run.add_argument("--agi-port", type=int, help="FastAGI port for the dialplan's AGI() (default 4573)")
    run.add_argument("--no-demo", action="store_true",
                     help="without --ami, start no simulated PBX and no demo traffic")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="run N processes as one center (needs CC_REDIS_URL; ports PORT.., AGI ports "
                          "AGI_PORT..; docs/deploy.md)")
    run.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="database commands").add_subparsers(metavar="ACTION")
    up = db.add_parser("upgrade", help="apply migrations and seed an empty database from YAML")
    up.set_defaults(func=cmd_db_upgrade)

    users = sub.add_parser("users", help="user accounts").add_subparsers(metavar="ACTION")
    add = users.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    add.add_argument("--name", help="display name")
    add.add_argument("--team")
    add.add_argument("--extension", help="agent phone, e.g. PJSIP/1001")
    add.add_argument("--skill", action="append", default=[], metavar="NAME=LEVEL",
                     help="skill with proficiency 1-10 (repeatable)")
    add.add_argument("--capacity", action="append", default=[], metavar="CHANNEL=N",
                     help="contacts at once per channel: voice (default 1), chat, email (default 0)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (else CC_USER_PASSWORD or a prompt)")
    add.set_defaults(func=cmd_users_add)

    agi = sub.add_parser("agi", help="classic AGI: handle one call over stdin/stdout (run by Asterisk)")
    agi.add_argument("--handlers", default="callcenter.agi_routes:handlers",
                     help="module:attribute of the script-name -> handler mapping")
    agi.add_argument("--script", help="handler name (default: the first AGI argument)")
    agi.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    agi.set_defaults(func=cmd_agi)

    register_ivr(sub)
    register_replay(sub)
    register_sim(sub)
    register_reports(sub)

    demo = sub.add_parser("demo", help="demo data").add_subparsers(metavar="ACTION")
    seed = demo.add_parser("seed", help="generate a realistic data set")
    seed.add_argument("--customers", type=int, default=1000)
    seed.add_argument("--interactions", type=int, default=10, help="per customer, on average")
    seed.add_argument("--random-seed", type=int, default=1)
    seed.add_argument("--quiet", action="store_true", help="no progress bar")
    seed.set_defaults(func=cmd_demo_seed)
    return p


def _database(settings: Settings):  # type: ignore[no-untyped-def]
    from crm_core.db import Database

    return Database(settings.database.url, schema=settings.database.schema_name)


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.http.host
    port = args.port if args.port is not None else settings.http.port
    if args.workers > 1:
        from callcenter.scaleout.workers import run_workers

        return run_workers(settings, args, port)
    settings = _pbx_settings(settings, args)
    if settings.redis.url and "CC_SCALEOUT__ENABLED" not in os.environ:  # one center, N processes
        settings = settings.model_copy(update={
            "scaleout": settings.scaleout.model_copy(update={"enabled": True})})
    asyncio.run(_serve(settings, host, port))
    return 0


def _pbx_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """--ami connects a real Asterisk; without it (and without --no-demo) the demo PBX runs."""
    ami, agi, demo = settings.ami, settings.agi, settings.demo
    if args.ami:
        h, _, p = args.ami.rpartition(":")
        if not h or not p.isdigit():
            raise CliError(f"--ami {args.ami!r}: expected HOST:PORT")
        ami = ami.model_copy(update={"enabled": True, "host": h, "port": int(p)})
        agi = agi.model_copy(update={"enabled": True})
    if args.ami_user:
        ami = ami.model_copy(update={"username": args.ami_user})
    if args.ami_secret_file:
        ami = ami.model_copy(update={"secret_file": args.ami_secret_file})
    if args.agi_port is not None:
        agi = agi.model_copy(update={"enabled": True, "port": args.agi_port})
    if not ami.enabled and not args.no_demo:
        demo = demo.model_copy(update={"enabled": True})
    if ami.enabled and not ami.resolved_secret():
        raise CliError("the AMI secret is missing: set CC_AMI__SECRET or --ami-secret-file")
    return settings.model_copy(update={"ami": ami, "agi": agi, "demo": demo})


async def _serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; print the bound address (port 0 picks a free one)."""
    import signal

    from aiohttp import web

    from callcenter.app import init_app

    logins: list[tuple[str, str]] = []
    if settings.demo.enabled:
        logins = await _demo_data(settings)
    runner = web.AppRunner(init_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
    base = f"http://{bound[0]}:{bound[1]}"
    print(f"callcenter: serving on {base}/ (Ctrl+C to stop)", flush=True)
    if settings.demo.enabled:
        print(f"callcenter: demo center with a simulated PBX; agent console: {base}/console", flush=True)
        from callcenter.channels.chat.setup import announce

        if line := announce(runner.app, base):
            print(line, flush=True)
        for username, role in logins:
            print(f"callcenter:   {role:<10} {username} / {settings.demo.password}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _demo_data(settings: Settings) -> list[tuple[str, str]]:
    from callcenter.bootstrap import open_store
    from callcenter.demo import ensure_demo_data

    store = open_store(settings)
    try:
        return await ensure_demo_data(store, settings)
    finally:
        await store.db.close()


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.bootstrap import upgrade_and_seed

    summary = asyncio.run(upgrade_and_seed(settings))
    print(f"callcenter: database is at the newest revision; {summary}")
    return 0


def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.bootstrap import add_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = os.environ.get("CC_USER_PASSWORD") or getpass.getpass("Password: ")
    skills = {}
    for item in args.skill:
        name, _, level = item.partition("=")
        if not name or not level.isdigit():
            raise CliError(f"--skill {item!r}: expected NAME=LEVEL with LEVEL 1-10")
        skills[name] = int(level)
    args.capacities = {}
    for item in args.capacity:
        channel, _, n = item.partition("=")
        if channel not in ("voice", "chat", "email") or not n.isdigit():
            raise CliError(f"--capacity {item!r}: expected voice=N, chat=N or email=N")
        args.capacities[channel] = int(n)
    user_id = asyncio.run(add_user(settings, args, password, skills))
    print(f"callcenter: user {args.username!r} created (id {user_id}, role {args.role})")
    return 0


def cmd_agi(settings: Settings, args: argparse.Namespace) -> int:
    """stdout is the AGI channel here: nothing else may be printed to it."""
    from callcenter.asterisk.agi_classic import load_handlers, run_classic_agi

    return run_classic_agi(load_handlers(args.handlers), script=args.script)


def cmd_demo_seed(settings: Settings, args: argparse.Namespace) -> int:
    from callcenter.bootstrap import demo_seed

    if args.customers < 1:
        raise CliError("--customers must be at least 1")
    took = asyncio.run(demo_seed(settings, args.customers, args.interactions,
                                 args.random_seed, progress=not args.quiet))
    print(f"callcenter: seeded {args.customers} customers in {took:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
