"""Typed keys for what the application object holds."""
from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from callcenter.services.center import Center
from callcenter.settings import Settings
from callcenter.telephony import Telephony
from crm_core.db import Database

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
REDIS = web.AppKey("redis", aioredis.Redis)
CENTER = web.AppKey("center", Center)
TELEPHONY = web.AppKey("telephony", Telephony)
