"""The admin page in Chromium manages business hours: a bad weekly value is refused with the
checker's message (nothing stored), good hours are saved, shown as live, and the running IVR flow
that names them uses them at once; Delete brings back the flow's own hours."""
from __future__ import annotations

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from ivr.loader import load_flow
from tests.agent_ui.test_admin_browser import ARGS, _sign_in
from tests.callcenter.api.test_hours import FLOW, _status
from tests.callcenter.voice_harness import running_center
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_admin_manages_business_hours_in_the_browser(database):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    from ivr import Engine

    store = build_store(load_settings(env={}), database)
    await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada Admin")
    async with running_center(database) as rc, async_playwright() as pw:
        rc.center.voice.flow = Engine(load_flow(FLOW), schedules=rc.center.voice.flow.schedules)
        assert _status(rc) == "open"
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        tid = page.get_by_test_id
        try:
            await _sign_in(page, rc.base, "ada", "admin-password", "/admin")
            form = tid("hours-form")
            await form.locator("[name=weekly]").fill('{"mon": "25:00-26:00"}')
            await form.get_by_role("button", name="Save hours").click()
            await expect(tid("admin-status")).to_contain_text("25:00")
            await expect(tid("hours").locator("tbody tr")).to_have_count(0)
            await form.locator("[name=weekly]").fill(
                '{"mon-fri": "13:00-17:00", "sat": "closed", "sun": "closed"}')
            await form.locator("[name=dates]").fill("2026-12-24, 2026-12-31")
            await form.get_by_role("button", name="Save hours").click()
            await expect(tid("admin-status")).to_have_text("hours main saved")
            row = tid("hours").locator("tbody tr")
            await expect(row).to_contain_text("13:00-17:00")  # read back from the server
            await expect(row).to_contain_text("live")
            assert _status(rc) == "closed"  # the running flow uses them at once
            await row.get_by_role("button", name="Delete").click()
            await expect(tid("admin-status")).to_have_text("hours main deleted")
            await expect(tid("hours").locator("tbody tr")).to_have_count(0)
            assert _status(rc) == "open"
            assert errors == []
        finally:
            await browser.close()
