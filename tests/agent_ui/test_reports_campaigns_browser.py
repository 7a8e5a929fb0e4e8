"""Campaign results on the reports page in Chromium (issue 17): by disposition and by segment
(tier), each with its Chart.js chart, its table and a CSV that matches the table; the JSON report
is for supervisors and admins only."""

from __future__ import annotations

import csv
import io

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.campaigns import CampaignStore
from tests.agent_ui.test_reports_browser import ARGS
from tests.callcenter.test_reports_api import scripted
from tests.callcenter.voice_harness import running_center
from tests.services import need_chromium

pytestmark = pytest.mark.timeout(180)


async def _campaign(database, vip_id: int) -> None:
    """'care' over tiers vip and regular: Vera (vip) ends with a sale, the others are pending."""
    cs = CampaignStore(database)
    camp = await cs.create(
        name="care",
        mode="progressive",
        script="Hi",
        dispositions=["sale", "no_sale"],
        schedule={"hours": ["09:00", "20:00"]},
    )
    assert await cs.add_segment(camp.id, {"tier": ["vip", "regular"]}) >= 2
    vera = next(r for r in await cs.records(camp.id) if r.customer_id == vip_id)
    await cs.log_attempt(camp.id, vera.id, "answered")
    await cs.settle(vera.id, status="done", disposition="sale", attempts=1)


async def _table(tid, name):
    table = tid(f"table-{name}")
    head = await table.locator("thead th").all_inner_texts()
    body = [await tr.locator("td").all_inner_texts() for tr in await table.locator("tbody tr").all()]
    return head, body


async def _csv_matches(page, tid, tmp_path, name, suffix):
    async with page.expect_download() as dl_info:
        await tid(f"csv-{name}").click()
    dl = await dl_info.value
    path = tmp_path / f"{name}-{suffix}.csv"
    await dl.save_as(path)
    got = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    head, body = await _table(tid, name)
    assert got[0] == head and got[1:] == body, (got, head, body)


async def test_campaign_results_by_disposition_and_segment(database, tmp_path):
    chromium = need_chromium()
    from playwright.async_api import async_playwright, expect

    store = build_store(load_settings(env={}), database)
    ids = await scripted(store)
    await _campaign(database, ids["vip"])
    async with running_center(database) as rc, async_playwright() as pw:
        # the report itself: supervisors and admins, not agents
        async with aiohttp.ClientSession() as http:
            url = f"{rc.base}/api/v1/campaigns/report"
            for role, code in (("admin", 200), ("supervisor", 200), ("agent", 403)):
                r = await http.get(url, headers={"Authorization": f"Bearer {ids['tokens'][role]}"})
                assert r.status == code, (role, await r.text())
            r = await http.get(
                url + "?by=nope", headers={"Authorization": f"Bearer {ids['tokens']['admin']}"}
            )
            assert r.status == 400

        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        ctx = await browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1200})
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tid = page.get_by_test_id
        try:
            await page.goto(f"{rc.base}/login")
            await tid("login-username").fill("sue")
            await tid("login-password").fill("super-password")
            await tid("login-submit").click()
            await page.goto(f"{rc.base}/reports?from=2026-11-10&to=2026-11-11&tz=UTC&interval=day")
            await expect(tid("reports-status")).to_contain_text("Shown: 2026-11-10 to 2026-11-11")

            # by disposition: one sale
            canvas = tid("chart-campaigns")
            await expect(canvas).to_have_attribute("data-rendered", "1")
            drawn = await canvas.evaluate(
                "c => { const ch = window.Chart.getChart(c); return ch ? ch.data.datasets[0].data : null; }"
            )
            assert drawn == [1]
            head, body = await _table(tid, "campaigns")
            assert head == ["campaign", "mode", "disposition", "records"]
            assert body == [["care", "progressive", "sale", "1"]]
            await _csv_matches(page, tid, tmp_path, "campaigns", "disposition")

            # by segment (tier): the vip record done with its sale, the regular one pending
            await tid("campaign-by").select_option("tier")
            await expect(tid("reports-status")).to_contain_text("Campaign results by tier")
            rows = tid("table-campaigns").locator("tbody tr")
            await expect(rows).to_have_count(2)
            head, body = await _table(tid, "campaigns")
            got = {r[2]: dict(zip(head, r, strict=True)) for r in body}
            assert got["vip"]["done"] == "1" and got["vip"]["dispositions"] == "sale 1"
            assert got["regular"]["pending"] == got["regular"]["records"] != "0"
            assert got["regular"]["dispositions"] == "" and got["regular"]["done"] == "0"
            await expect(tid("chart-campaigns")).to_have_attribute("data-rendered", "1")
            labels = await tid("chart-campaigns").evaluate("c => window.Chart.getChart(c).data.labels")
            assert sorted(labels) == ["care · regular", "care · vip"]
            await _csv_matches(page, tid, tmp_path, "campaigns", "tier")
            assert not errors, errors
        finally:
            await browser.close()
