"""CSV import of customers through the API: bad rows reported with reasons; valid rows in one
transaction, or nothing at all, as the admin chooses; audited."""
from __future__ import annotations

import aiohttp
import pytest

from callcenter.app import build_store
from callcenter.settings import load_settings
from tests.callcenter.voice_harness import VIP_PHONE, running_center, seed_people

pytestmark = pytest.mark.timeout(120)

CSV = (
    "name,phones,emails,tier,lifetime_value,tags\n"
    "Alma Good,(202) 555-0101,alma@example.com,vip,100,gold;newsletter\n"  # line 2: fine
    ",(202) 555-0102,,,,\n"  # 3: no name
    "Carl Badphone,12,,,,\n"  # 4: not a phone
    "Dora Bademail,,dora@@example,,,\n"  # 5: not an email
    "Eve Tier,,eve@example.com,platinum,,\n"  # 6: unknown tier
    f"Fay Taken,{VIP_PHONE},,,,\n"  # 7: the number belongs to a customer already
    "Gus Twice,,alma@example.com,,,\n"  # 8: the same email as line 2
    "Hal Fine,+44 20 7946 0000,,key,,\n"  # 9: fine
)


async def _post(http, base, token, body, mode):
    r = await http.post(f"{base}/api/v1/customers/import?mode={mode}", data=body.encode(),
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"})
    return r.status, await r.json()


async def test_import_reports_bad_rows_and_never_half_a_file(database) -> None:
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, token = await store.create_api_token(ada.id, "import", "admin")
    async with running_center(database) as rc, aiohttp.ClientSession() as http:
        status, report = await _post(http, rc.base, token, CSV, "all_or_nothing")
        assert status == 200, report
        assert report["imported"] == 0 and report["rows"] == 8
        reasons = {r["line"]: " ".join(r["reasons"]) for r in report["rejected"]}
        assert set(reasons) == {3, 4, 5, 6, 7, 8}
        assert "name" in reasons[3] and "phone" in reasons[4] and "email" in reasons[5]
        assert "tier" in reasons[6] and "already belongs" in reasons[7] and "line 2" in reasons[8]
        assert (await store.search("Alma")).items == ()  # nothing went in
        status, report = await _post(http, rc.base, token, CSV, "valid_rows")
        assert status == 200 and report["imported"] == 2 and len(report["rejected"]) == 6
        alma = await store.identify(email="alma@example.com")
        assert alma is not None and alma.tier == "vip" and sorted(alma.tags) == ["gold", "newsletter"]
        hal = await store.identify(phone="+442079460000")
        assert hal is not None and hal.name == "Hal Fine"
        # the same file again: every row now clashes, nothing is duplicated
        status, report = await _post(http, rc.base, token, CSV, "valid_rows")
        assert report["imported"] == 0
        # a file without a name column is refused as a whole
        status, err = await _post(http, rc.base, token, "phone\n+12025550100\n", "valid_rows")
        assert status == 400 and "name" in err["error"]["message"]
        status, err = await _post(http, rc.base, token, CSV, "half")
        assert status == 400
        audit = await store.list_audit(action="customer.import")
        assert [e.after["imported"] for e in audit][:3] == [0, 2, 0] and audit[0].actor == "ada"
