"""The API rate limit over real HTTP: per API token, else per client address; over the limit the
API answers 429 with Retry-After, and the bucket refills as the injected clock moves."""
from __future__ import annotations

import aiohttp
import pytest

from callcenter.api.ratelimit import RateLimiter, caller_key
from callcenter.api.routes import RATE_LIMITER
from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import running_center

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_refills_with_the_clock() -> None:
    clock = Clock()
    lim = RateLimiter(per_minute=60, burst=2, clock=clock)
    assert [lim.take("a"), lim.take("a")] == [0.0, 0.0]
    assert lim.take("a") == pytest.approx(1.0)
    assert lim.take("b") == 0.0  # another caller has its own bucket
    clock.t += 0.5
    assert lim.take("a") == pytest.approx(0.5)  # refused requests spend nothing
    clock.t += 0.5
    assert lim.take("a") == 0.0
    assert caller_key("Bearer cct_secret", "1.2.3.4").startswith("token:")
    assert "cct_secret" not in caller_key("Bearer cct_secret", "1.2.3.4")
    assert caller_key("", "1.2.3.4") == "ip:1.2.3.4"
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0)


async def test_api_answers_429_with_retry_after_per_token(database) -> None:
    store = build_store(load_settings(env={}), database)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, one = await store.create_api_token(ada.id, "one", "admin")
    _t, two = await store.create_api_token(ada.id, "two", "admin")
    async with running_center(database, CC_WEB__API_RATE_PER_MINUTE="6", CC_WEB__API_BURST="3") as rc, \
            aiohttp.ClientSession() as http:
        clock = Clock()
        rc.app[RATE_LIMITER].clock = clock

        async def me(token: str | None) -> aiohttp.ClientResponse:
            h = {"Authorization": f"Bearer {token}"} if token else {}
            r = await http.get(rc.base + "/api/v1/me", headers=h)
            await r.read()
            return r

        assert [(await me(one)).status for _ in range(3)] == [200, 200, 200]
        r = await me(one)
        assert r.status == 429 and r.headers["Retry-After"] == "10"  # 6/min: one every 10 s
        body = await (await http.get(rc.base + "/api/v1/me",
                                     headers={"Authorization": f"Bearer {one}"})).json()
        assert body["error"]["code"] == "rate_limited" and one not in str(body)
        assert (await me(two)).status == 200  # another token is not held back
        # callers without a token are limited by address (here: every anonymous request)
        assert [(await me(None)).status for _ in range(4)] == [401, 401, 401, 429]
        clock.t += 10
        assert (await me(one)).status == 200
        assert (await me(one)).status == 429
