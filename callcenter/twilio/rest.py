"""The Twilio REST client (the twilio library's own), with an optional API base URL: a regional
edge, a proxy, or in the tests a local fake of the Calls API. The auth token is never logged."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client


class BaseUrlHttpClient(AsyncTwilioHttpClient):
    """Sends every request to ``base_url`` (same path) instead of api.twilio.com."""

    def __init__(self, base_url: str | None, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None

    async def request(self, method: str, url: str, params: Any = None, data: Any = None,
                      headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                      timeout: float | None = None, allow_redirects: bool = False) -> Any:
        if self.base_url:
            url = self.base_url + urlsplit(url).path
        headers = dict(headers or {})
        if auth is not None:  # as a header (aiohttp's BasicAuth object is deprecated); never logged
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        return await super().request(method, url, params=params, data=data, headers=headers, auth=None,
                                     timeout=timeout if timeout is not None else self.timeout,
                                     allow_redirects=allow_redirects)


def make_client(account_sid: str, auth_token: str, api_base_url: str | None,
                timeout: float = 10.0) -> tuple[Client, BaseUrlHttpClient]:
    """The client and its HTTP client (close the latter at shutdown). Call from a running loop."""
    http = BaseUrlHttpClient(api_base_url, timeout)
    return Client(account_sid, auth_token, http_client=http), http
