"""A running center with Twilio as the carrier: the real app over HTTP, the simulated Twilio
driving its webhooks, and the fake REST API the center's twilio client talks to."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from callcenter.app import build_store, init_app
from callcenter.keys import CENTER
from callcenter.services.center import Center
from callcenter.settings import load_settings
from crm_core.db import Database
from crm_core.store import CrmStore
from tests.callcenter.twilio.sim import ACCOUNT_SID, AUTH_TOKEN, FakeRest, SimTwilio, sim_twilio
from tests.callcenter.voice_harness import WEEKDAY_NOON_NY
from tests.http import serve

PUBLIC = "https://cc.example.com/voice"  # the proxy's address (it strips /voice)
SIP_DOMAIN = "agents.example.sip.twilio.com"


def sip(extension: str) -> str:
    return f"sip:{extension}@{SIP_DOMAIN}"


@dataclass
class Running:
    base: str
    app: web.Application
    center: Center
    twilio: SimTwilio
    store: CrmStore


@asynccontextmanager
async def running_twilio(database: Database, *, public: str | None = PUBLIC,
                         ivr_clock: Callable[[], datetime] = lambda: WEEKDAY_NOON_NY,
                         **env: str) -> AsyncIterator[Running]:
    rest = FakeRest()
    async with serve(rest.app) as rest_base:
        settings = load_settings(env={
            "CC_TWILIO__ENABLED": "true", "CC_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
            "CC_TWILIO__AUTH_TOKEN": AUTH_TOKEN, "CC_TWILIO__API_BASE_URL": rest_base,
            "CC_TWILIO__AGENT_SIP_DOMAIN": SIP_DOMAIN, "CC_VOICE__ACK_TIMEOUT_S": "2",
            "CC_CHAT__ENABLED": "false", "CC_EMAIL__ENABLED": "false",
            **({"CC_TWILIO__PUBLIC_BASE_URL": public} if public else {}), **env})
        app = init_app(settings, database=database, ivr_clock=ivr_clock)
        async with serve(app) as base, sim_twilio(base, public, rest) as tw:
            yield Running(base, app, app[CENTER], tw, build_store(settings, database))
