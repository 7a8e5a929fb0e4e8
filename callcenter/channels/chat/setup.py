"""Wiring web chat into the running center, and the demo's shop page on another origin."""
from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from callcenter.channels.chat.service import ChatService, Site, options_from_settings
from callcenter.keys import CENTER, SETTINGS

log = logging.getLogger(__name__)
DEMO_SITE = "demo"
DEMO_SITE_URL = web.AppKey("chat_demo_site_url", str)
DEMO_CENTER = web.AppKey("chat_demo_center", dict)  # {"base": the center's URL, as bound}


def attach(center: Any, settings: Any) -> ChatService:
    """Build the chat service from the settings and attach it to the center."""
    bot = None
    if settings.chat.bot_flow:
        from callcenter.ivr_agi import load_flow_file
        from ivr import ChatBot
        from ivr import Engine as FlowEngine

        flow = load_flow_file(settings.config_path(f"ivr/{settings.chat.bot_flow}.yaml"))
        bot = ChatBot(FlowEngine(flow))
    service: ChatService = center.attach_chat(options_from_settings(settings.chat), bot)

    async def mailer(to: str, subject: str, body: str) -> None:
        """Through the email channel's smarthost, when the channel is on (looked up at send time:
        it is attached after chat)."""
        email = getattr(center, "email", None)
        if email is None:
            raise RuntimeError("the email channel is off")
        from callcenter.channels.email import outbound

        o = email.options
        msg = outbound.compose(sender=o.address, sender_name=o.display_name, to=to, subject=subject,
                               body=body, domain=o.domain, in_reply_to=None, references=[])
        await outbound.send(o.smarthost, o.address, [to], msg)

    service.mailer = mailer if settings.email.enabled else None
    return service


DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme Telecom · Help</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1d2733; background: #f6f7f9; }}
 header {{ background: #12355b; color: #fff; padding: 18px 32px; font-size: 20px; font-weight: 600; }}
 main {{ max-width: 760px; margin: 32px auto; padding: 0 24px; }}
 .hero {{ background: #fff; border-radius: 10px; padding: 24px 28px; box-shadow: 0 1px 3px #0002; }}
</style></head>
<body><header>Acme Telecom</header>
<main><div class="hero"><h1>How can we help?</h1>
<p>This page is a customer's website on its own origin ({origin}). The chat button in the corner
is the contact center's widget, embedded with one script tag.</p></div></main>
<script src="{center}/widget/widget.js" data-site="{site}" async></script>
</body></html>
"""


def demo_page(center_base: str, origin: str, site: str = DEMO_SITE) -> str:
    return DEMO_PAGE.format(center=html.escape(center_base, quote=True), origin=html.escape(origin),
                            site=html.escape(site, quote=True))


async def demo_site_ctx(app: web.Application) -> AsyncIterator[None]:
    """`make run`: a shop page on `chat.demo_site_port`, allow-listed as the site `demo`."""
    s = app[SETTINGS]
    host, port = s.http.host, s.chat.demo_site_port
    state: dict[str, str] = {"base": (s.http.public_base_url or f"http://{host}:{s.http.port}").rstrip("/")}
    app[DEMO_CENTER] = state
    shop = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=demo_page(state["base"], state["origin"]), content_type="text/html")

    shop.router.add_get("/", page)
    runner = web.AppRunner(shop)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    origins = {f"http://{host}:{bound}", f"http://localhost:{bound}", f"http://127.0.0.1:{bound}"}
    state["origin"] = f"http://{host}:{bound}"
    chat = app[CENTER].chat
    if chat is not None and DEMO_SITE not in chat.options.sites:
        chat.options.sites[DEMO_SITE] = Site(DEMO_SITE, frozenset(origins), "demo-site-secret")
    log.info("demo shop page with the chat widget: http://%s:%d/", host, bound)
    app[DEMO_SITE_URL] = state["origin"]
    yield
    await runner.cleanup()


def announce(app: web.Application, base: str) -> str | None:
    """Once the center is bound: the demo page points at `base`; the line to print, if any."""
    state = app.get(DEMO_CENTER)
    if state is None:
        return None
    if not app[SETTINGS].http.public_base_url:
        state["base"] = base
    return f"callcenter: demo shop page with the chat widget (another origin): {state['origin']}/"
