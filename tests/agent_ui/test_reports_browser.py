"""The reports page in Chromium (issue 16): every chart renders (Chart.js served locally), each
chart's table shows the hand-checked figures, each CSV downloads and matches its table, a customer
at risk opens their record and is called back in one click (shown once the server confirmed)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.test_reports_api import scripted
from tests.callcenter.voice_harness import running_center
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CHARTED = ("intervals", "by", "dispositions", "tiers", "customers", "at-risk")  # (no tickets in the range)


async def test_reports_page_charts_tables_and_csv(database, tmp_path):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    store = build_store(load_settings(env={}), database)
    ids = await scripted(store)
    for _ in range(3):  # Rob: three contacts this week and two complaints: at risk
        i = await store.open_interaction("voice", "inbound", ids["reg"], queue="billing")
        await store.set_state(i.id, "abandoned")
    for _ in range(2):
        await store.create_ticket(ids["reg"], "complaint", "Billing complaint")
    async with running_center(database) as rc, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        ctx = await browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1200})
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(rc.base) else None)
        tid = page.get_by_test_id
        try:
            await page.goto(f"{rc.base}/login")
            await tid("login-username").fill("ada")
            await tid("login-password").fill("admin-password")
            await tid("login-submit").click()
            await page.goto(f"{rc.base}/reports?from=2026-11-10&to=2026-11-11&tz=UTC&interval=day&by=queue")
            await expect(tid("reports-status")).to_contain_text("Shown: 2026-11-10 to 2026-11-11")
            for name in CHARTED:  # a Chart.js chart is attached to each canvas and has drawn
                canvas = tid(f"chart-{name}")
                await expect(canvas).to_have_attribute("data-rendered", "1")
                drawn = await canvas.evaluate(
                    "c => { const ch = window.Chart.getChart(c); "
                    "return ch ? ch.data.datasets[0].data.length : -1; }"
                )
                assert drawn > 0, name
            # the tables hold the hand-checked figures (tests/crm_core/test_reports.py)
            day = tid("table-intervals").locator("tbody tr")
            await expect(day).to_have_count(2)
            await expect(day.nth(1)).to_contain_text("2026-11-11")
            cells = await day.nth(1).locator("td").all_inner_texts()
            cols = await tid("table-intervals").locator("thead th").all_inner_texts()
            row = dict(zip(cols, cells, strict=True))
            assert (
                row["contacts"],
                row["offered"],
                row["service_level"],
                row["asa_s"],
                row["aht_s"],
                row["short_abandoned"],
                row["transfer_rate"],
            ) == ("4", "3", "0.3333", "17.5", "225", "1", "0.5")

            # every CSV downloads and matches its table
            for name in (
                "intervals",
                "by",
                "dispositions",
                "tiers",
                "tickets",
                "customers",
                "at-risk",
                "occupancy",
                "not-ready",
                "movement",
            ):
                async with page.expect_download() as dl_info:
                    await tid(f"csv-{name}").click()
                dl = await dl_info.value
                path = tmp_path / f"{name}.csv"
                await dl.save_as(path)
                got = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
                table = tid(f"table-{name}")
                head = await table.locator("thead th").all_inner_texts()
                body = [
                    await tr.locator("td").all_inner_texts() for tr in await table.locator("tbody tr").all()
                ]
                if name == "at-risk":  # the page adds a callback column
                    head, body = head[:-1], [r[:-1] for r in body]
                assert got[0] == head, name
                assert got[1:] == body, name

            # a customer at risk: their record, then a callback in one click
            await tid("table-at-risk").locator(f"a[data-customer='{ids['reg']}']").click()
            record = tid("customer-record")
            await expect(record).to_be_visible()
            await expect(record).to_contain_text("+12025550102")
            await tid(f"callback-{ids['reg']}").click()
            await expect(tid(f"callback-done-{ids['reg']}")).to_contain_text("scheduled to +12025550102")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "reports.png"), full_page=True)
            assert not errors, errors
            assert not outside, outside  # no CDN: everything from the center itself
        finally:
            await browser.close()
