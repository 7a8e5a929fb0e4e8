"""The demo center of `make run`: demo users and customers, a simulated PBX, and live traffic.

Nothing here runs unless `settings.demo.enabled`; `callcenter run` turns it on when no real
Asterisk is configured (`--ami`), and prints the URLs and the demo logins."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import text

from callcenter.asterisk.simulator import Simulator
from callcenter.keys import CENTER, SETTINGS
from callcenter.settings import Settings
from callcenter.telephony import SimulatorPhone, Telephony
from crm_core.errors import DuplicateUser
from crm_core.store import CrmStore

log = logging.getLogger(__name__)

DEMO_USERS = [  # username, display name, role, extension, skills
    ("agent1", "Alice Agent", "agent", "1001", {"billing": 7, "support": 5}),
    ("agent2", "Bob Agent", "agent", "1002", {"support": 8, "billing": 3}),
    ("agent3", "Chen Agent", "agent", "1003", {"billing": 5, "support": 5, "es": 6}),
    ("supervisor", "Sam Supervisor", "supervisor", "2001", {}),  # listens in on calls from there
]
AMI_SECRET = "demo-ami-secret"  # the in-process simulator's manager secret (loopback only)
# The demo flow has a business-hours branch; the demo plays it as if it were a weekday at noon
# in New York, so that callers reach agents whatever the time here.
DEMO_NOON = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)

# What demo callers press: (weight, digits, share of callers who hang up while queued)
CALL_MIX = [
    (30, ["1", "0"], 0.10),  # English, "speak to an agent"
    (25, ["1", "1", "1234567", "1"], 0.05),  # billing: account number, balance, then an agent
    (20, ["1", "2"], 0.10),  # technical support
    (10, ["2", "0"], 0.10),  # Chinese, agent
    (5, ["1", "3", "1"], 0.0),  # callback at the caller's number
    (10, [], 0.20),  # presses nothing: the menus time out into the general queue
]


async def ensure_demo_data(store: CrmStore, settings: Settings) -> list[tuple[str, str]]:
    """Demo users (agents with extensions, a supervisor) and demo customers, if missing.
    Returns the logins as (username, role)."""
    from crm_core.demo import seed_demo

    logins = []
    for username, name, role, ext, skills in DEMO_USERS:
        try:
            await store.create_user(username, settings.demo.password, roles=[role], display_name=name,
                                    team="frontline", extension=ext, skills=skills,
                                    capacities={"voice": 1, "chat": 3, "email": 5}, actor="demo")
        except DuplicateUser:
            pass
        logins.append((username, role))
    async with store.db.engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM customers"))).scalar_one()
    if have < settings.demo.customers:
        await seed_demo(store.db, customers=settings.demo.customers - have, rng_seed=have + 1,
                        rules=store.rules, progress=False)
    return logins


async def start_simulated_pbx(app: web.Application, tel: Telephony) -> Simulator:
    """FastAGI on a free port, the simulator pointed at it, our AMI client on the simulator."""
    settings = app[SETTINGS]
    center = app[CENTER]
    agi = await tel.start_agi("127.0.0.1", 0, settings.agi.max_sessions)
    sim = Simulator(agi_target=f"agi://127.0.0.1:{agi.port}", ami_users={"cc": AMI_SECRET},
                    time_scale=settings.demo.time_scale)
    for agent in center.directory.agents.values():
        if agent.extension:
            sim.agent(agent.extension.split("/")[-1], manual=True)  # the console's soft-phone
    sim.pbx.recordings_dir = center.voice.options.recordings_dir  # placeholder files for playback
    await sim.start()
    await tel.start_ami("127.0.0.1", sim.ami_port, "cc", AMI_SECRET)
    center.voice.softphone = SimulatorPhone(sim)
    if settings.demo.calls_per_minute > 0:
        task = asyncio.get_running_loop().create_task(
            traffic(sim, center.store, settings.demo.calls_per_minute))
        app.on_shutdown.append(lambda _app: _cancel(task))
    return sim


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def traffic(sim: Simulator, store: CrmStore, per_minute: float, *, seed: int = 1) -> None:
    """Poisson arrivals of demo calls: seeded customers (VIPs among them) and unknown callers."""
    rng = random.Random(seed)
    async with store.db.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT cp.value, c.tier FROM contact_points cp JOIN customers c ON c.id = cp.customer_id "
            "WHERE cp.kind = 'phone' ORDER BY cp.id LIMIT 5000"))).all()
    vips = [r[0] for r in rows if r[1] == "vip"]
    known = [r[0] for r in rows]
    weights = [w for w, _d, _a in CALL_MIX]
    while True:
        await asyncio.sleep(rng.expovariate(per_minute / 60.0))
        roll = rng.random()
        if roll < 0.15 and vips:
            caller = rng.choice(vips)
        elif roll < 0.85 and known:
            caller = rng.choice(known)
        else:
            caller = f"+1202555{rng.randrange(10000):04d}"  # not in the CRM: a new caller
        _w, digits, abandon = rng.choices(CALL_MIX, weights)[0]
        patience = rng.uniform(30, 120) if rng.random() < abandon else None
        sim.call(caller, digits=digits, abandon_after=patience)


def demo_clock() -> datetime:
    """The demo IVR's "now": noon in New York on a weekday, moving with real time."""
    return DEMO_NOON + (datetime.now(UTC) - _STARTED)


_STARTED = datetime.now(UTC)
