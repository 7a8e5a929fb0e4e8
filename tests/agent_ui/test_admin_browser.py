"""The admin page in Chromium: an admin creates a queue and an agent; the new agent signs in, goes
ready, and the running router (no restart) offers a contact of the new queue to that agent. The
audit table shows the changes; an agent cannot open the page."""
from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from routing import Channel, Contact, ContactArrived, Offer
from tests.callcenter.voice_harness import running_center, seed_people
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
SHOTS = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


async def _sign_in(page, base: str, username: str, password: str, then: str) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await page.goto(f"{base}{then}")


async def test_admin_creates_a_queue_and_an_agent_and_routing_uses_them(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada Admin")
    async with running_center(database) as rc, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        admin = await browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        admin.on("pageerror", lambda e: errors.append(str(e)))
        admin.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tid = admin.get_by_test_id
        try:
            await _sign_in(admin, rc.base, "ada", "admin-password", "/admin")
            await expect(tid("admin-user")).to_have_text("Ada Admin")
            await expect(tid("queues").locator("tr[data-queue=billing]")).to_be_visible()

            # 1. A new queue that needs French.
            form = tid("queue-form")
            await form.locator("[name=name]").fill("french")
            await form.locator("[name=label]").fill("French desk")
            await form.locator("[name=skills]").fill("french=3")
            await form.get_by_role("button").click()
            row = tid("queues").locator("tr[data-queue=french]")
            await expect(row).to_contain_text("french=3")  # read back from the server

            # 2. A new agent who speaks French.
            form = tid("user-form")
            await form.locator("[name=username]").fill("felix")
            await form.locator("[name=password]").fill("felix-password")
            await form.locator("[name=display_name]").fill("Félix Fr")
            await form.locator("[name=extension]").fill("1077")
            await form.locator("[name=skills]").fill("french=5")
            await form.get_by_role("button").click()
            await expect(tid("users").locator("tr[data-user=felix]")).to_contain_text("french=5")
            await expect(tid("audit")).to_contain_text("queue.create")
            await expect(tid("audit")).to_contain_text("user.create")
            # 2b. An IVR flow: a broken one shows the checker's issues; a good one is stored and activated.
            demo = (ROOT / "config" / "ivr" / "demo.yaml").read_text(encoding="utf-8")
            flow_form = admin.locator("form[data-form=flow]")
            broken = demo.replace("next: vip_queue", "next: no_such_node", 1)
            await flow_form.locator("[name=file]").set_input_files(
                {"name": "demo.yaml", "mimeType": "application/yaml", "buffer": broken.encode()})
            await flow_form.get_by_role("button", name="Upload and check").click()
            await expect(tid("flow-issues")).to_contain_text("no_such_node")
            await flow_form.locator("[name=file]").set_input_files(
                {"name": "demo.yaml", "mimeType": "application/yaml", "buffer": demo.encode()})
            await flow_form.get_by_role("button", name="Upload and check").click()
            await tid("flows").get_by_role("button", name="Activate").click()
            await expect(tid("flows")).to_contain_text("active")
            await expect(tid("admin-status")).to_contain_text("active and live")
            errors.clear()  # the refused upload logged its 400 in the browser console, as expected
            await admin.screenshot(path=str(SHOTS / "admin.png"), full_page=True)

            # 3. Felix signs in and goes ready in his console.
            ctx = await browser.new_context()
            agent = await ctx.new_page()
            await _sign_in(agent, rc.base, "felix", "felix-password", "/console")
            await expect(agent.get_by_test_id("connection")).to_have_attribute("data-status", "connected")
            await agent.get_by_test_id("state-select").select_option("ready")
            await expect(agent.get_by_test_id("state-select")).to_have_value("ready")

            # 4. The running router offers a contact of the new queue to the new agent.
            felix = await store.get_user("felix")
            now = rc.center.runner.clock()
            decisions = await rc.center.runner.handle(
                ContactArrived(Contact("admin-test-1", Channel.VOICE, "french", now)))
            offers = [d for d in decisions if isinstance(d, Offer)]
            assert [(o.agent_id, o.queue) for o in offers] == [(str(felix.id), "french")]

            # 5. An agent may not open the admin page.
            await agent.goto(f"{rc.base}/admin")
            assert "forbidden" in (await agent.content())
            assert errors == []
        finally:
            await admin.screenshot(path=str(ARTIFACTS / f"admin-{database.dialect}.png"), full_page=True)
            await browser.close()
