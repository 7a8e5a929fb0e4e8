"""The OpenAPI description served at /api/v1/openapi.json matches the routes the app really has."""
from __future__ import annotations

import aiohttp
import pytest

from agent_ui import access
from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(90)


async def test_openapi_matches_the_routes_and_is_valid(database) -> None:
    await seed_people(build_store(load_settings(env={}), database))
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        r = await http.get(f"{rc.base}/api/v1/openapi.json")  # public: no token needed
        assert r.status == 200
        doc = await r.json()
        routes = {(route.method, route.resource.canonical) for route in rc.app.router.routes()
                  if route.resource is not None and route.resource.canonical.startswith("/api/v1/")
                  and route.method != "HEAD"}
        described = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
        assert described == routes
        assert len(routes) > 30
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                rule = access.HTTP[(method.upper(), path)]
                if rule.scope != "public":
                    assert op["x-roles"] == sorted(rule.roles), (method, path)
    try:
        from openapi_spec_validator import validate
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.skip("openapi-spec-validator is not installed")
    validate(doc)
    assert doc["openapi"].startswith("3.1")
