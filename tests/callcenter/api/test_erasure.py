"""Erasure through the API: the customer's personal data is gone from every table and file, the
report totals are unchanged, and the erasure is audited (without the erased data)."""
from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import inspect, select

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.chat import ChatLog
from crm_core.models import Base
from tests.callcenter.voice_harness import running_center, seed_people

pytestmark = pytest.mark.timeout(120)
SECRETS = ("Zelda Erasable", "+12025550177", "zelda@example.org", "her dog is called Pixel",
           "my account is 99887766", "Zelda's broken router")


async def _dump(database) -> str:
    """Every row of every table, as text."""
    def tables(conn):
        return set(inspect(conn).get_table_names())

    async with database.engine.connect() as conn:
        present = await conn.run_sync(tables)
        out = []
        for table in Base.metadata.sorted_tables:
            if table.name in present:
                out += [repr(tuple(r)) for r in (await conn.execute(select(table))).all()]
    return "\n".join(out)


async def test_erasure_removes_personal_data_and_keeps_the_totals(database, tmp_path) -> None:
    store = build_store(load_settings(env={}), database)
    await seed_people(store)
    ada = await store.create_user("ada", "admin-password", roles=["admin"], display_name="Ada")
    _t, token = await store.create_api_token(ada.id, "dpo", "admin")
    z = await store.create_customer("Zelda Erasable", phones=["(202) 555-0177"], emails=["zelda@example.org"],
                                    notes="her dog is called Pixel")
    call = await store.open_interaction("voice", "inbound", z.id, from_address="+12025550177")
    await store.set_state(call.id, "answered", queue="billing")
    await store.set_state(call.id, "ended")
    await store.append_event(call.id, "ivr_input", data={"said": "my account is 99887766"})
    await store.set_disposition(call.id, "resolved", "my account is 99887766")
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "zelda.wav").write_bytes(b"RIFF....WAVE")
    await store.update_interaction(call.id, recording_ref="zelda.wav")
    chat = await store.open_interaction("chat", "inbound", z.id)
    await ChatLog(database).append(chat.id, 1, "customer", "her dog is called Pixel")
    await store.create_ticket(z.id, "complaint", "Zelda's broken router",
                              description="her dog is called Pixel")
    other = await store.search("Victoria")
    async with running_center(database, CC_VOICE__RECORDINGS_DIR=str(rec)) as rc, \
            aiohttp.ClientSession() as http:
        h = {"Authorization": f"Bearer {token}"}
        before = await (await http.get(f"{rc.base}/api/v1/reports/summary", headers=h)).json()
        dump = await _dump(database)
        assert all(s in dump for s in SECRETS)  # the check below can fail
        r = await http.post(f"{rc.base}/api/v1/customers/{z.id}/erase", headers=h)
        assert r.status == 200, await r.text()
        report = await r.json()
        assert report["interactions"] == 2 and report["tickets"] == 1 and report["files_deleted"] == 1
        after = await (await http.get(f"{rc.base}/api/v1/reports/summary", headers=h)).json()
        assert after == before
        assert (await http.get(f"{rc.base}/api/v1/customers/{z.id}", headers=h)).status == 404
        r = await http.post(f"{rc.base}/api/v1/customers/{z.id}/erase", headers=h)
        assert r.status == 404, await r.text()
    dump = await _dump(database)
    for s in SECRETS:
        assert s not in dump, s
    assert not (rec / "zelda.wav").exists()
    assert (await store.search("Victoria")).items == other.items  # nobody else touched
    audit = await store.list_audit(action="customer.erase")
    assert len(audit) == 1 and audit[0].actor == "ada" and audit[0].entity_id == str(z.id)
