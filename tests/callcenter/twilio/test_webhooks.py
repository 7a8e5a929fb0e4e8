"""Hostile and odd webhooks over real HTTP: missing or wrong signatures, URLs changed on the way
(port, scheme, host, a proxy), replays, unknown calls, over-long or strange Digits."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from callcenter.app import build_store
from callcenter.settings import load_settings
from crm_core.models import Interaction
from tests.callcenter.twilio.harness import PUBLIC, running_twilio
from tests.callcenter.twilio.sim import ACCOUNT_SID, new_sid
from tests.callcenter.voice_harness import REGULAR_PHONE, seed_people

pytestmark = pytest.mark.timeout(60)


def _store(database):
    return build_store(load_settings(env={}), database)


def _params(sid: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "CallSid": sid, "From": REGULAR_PHONE, "To": "+15550001000",
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01", **extra}


async def _interactions(store) -> int:
    async with store.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(Interaction))).scalar_one())


def _verbs(body: str) -> list[str]:
    return [v.tag for v in ET.fromstring(body)]


async def test_bad_signatures_get_403_are_logged_and_change_nothing(database, caplog):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        tw = rc.twilio
        url = PUBLIC + "/twilio/voice"
        before = await _interactions(store)
        caplog.set_level(logging.WARNING, logger="callcenter.twilio.web")
        cases = {
            "missing": dict(signature=None),
            "other token": dict(signature=RequestValidator("not-the-token").compute_signature(
                url, _params("CA" + "1" * 32))),
            "garbage": dict(signature="AAAA"),
            "scheme": dict(sign_url=url.replace("https://", "http://")),
            "port": dict(sign_url=url.replace("cc.example.com", "cc.example.com:8443")),
            "host": dict(sign_url=url.replace("cc.example.com", "evil.example.com")),
            "the app's own address behind the proxy": dict(sign_url=tw.local_base + "/twilio/voice"),
            "path prefix lost": dict(sign_url="https://cc.example.com/twilio/voice"),
        }
        for name, kw in cases.items():
            hook = await tw.post(url, _params("CA" + "1" * 32), **kw)
            assert hook.status == 403, name
        # parameters changed after signing
        sig = RequestValidator(tw.validator.token.decode()).compute_signature(url, _params("CA" + "2" * 32))
        hook = await tw.post(url, _params("CA" + "2" * 32, From="+19995550000"), signature=sig)
        assert hook.status == 403
        # a forwarded header does not change the URL the signature is checked against
        assert tw.session is not None
        evil = "https://evil.example.com/twilio/voice"
        async with tw.session.post(tw.local_base + "/twilio/voice", data=_params("CA" + "3" * 32), headers={
                "X-Twilio-Signature": tw.validator.compute_signature(evil, _params("CA" + "3" * 32)),
                "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "https",
                "Host": "evil.example.com"}) as r:
            assert r.status == 403
        # a multipart form with a file is never Twilio's, whatever its signature says
        form = aiohttp.FormData(_params("CA" + "5" * 32))
        form.add_field("Digits", b"123", filename="x.bin")
        async with tw.session.post(tw.local_base + "/twilio/voice", data=form, headers={
                "X-Twilio-Signature": tw.validator.compute_signature(url, _params("CA" + "5" * 32))}) as r:
            assert r.status == 403
        assert await _interactions(store) == before
        refused = [r for r in caplog.records if "refused /twilio/voice" in r.getMessage()]
        assert len(refused) == len(cases) + 3
        assert any("missing signature" in r.getMessage() for r in refused)
        assert all(tw.validator.token.decode() not in r.getMessage() for r in caplog.records)

        # Twilio's own signing quirk: the default port written out is the same URL
        ok = await tw.post(url, _params("CA" + "4" * 32), sign_url=url.replace(".com/", ".com:443/", 1))
        assert ok.status == 200 and "Gather" in _verbs(ok.body)
        assert await _interactions(store) == before + 1


async def test_without_a_public_base_url_the_request_url_is_signed(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database, public=None) as rc:
        tw = rc.twilio
        url = tw.local_base + "/twilio/voice"
        ok = await tw.post(url, _params(new_sid()))
        assert ok.status == 200 and "Gather" in _verbs(ok.body)
        gather = ET.fromstring(ok.body).find("Gather")
        assert gather is not None and gather.attrib["action"] == "/twilio/gather?n=1"  # relative
        bad = await tw.post(url, _params(new_sid()), sign_url=PUBLIC + "/twilio/voice")
        assert bad.status == 403


async def test_replays_change_nothing_twice(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        tw = rc.twilio
        sid = new_sid()
        first = await tw.post(PUBLIC + "/twilio/voice", _params(sid))
        again = await tw.post(PUBLIC + "/twilio/voice", _params(sid))
        assert first.status == again.status == 200 and first.body == again.body
        i = await store.find_interaction(sid)
        g1 = await tw.post(PUBLIC + "/twilio/gather?n=1", _params(sid, Digits="1"))
        assert "Gather" in _verbs(g1.body)  # the main menu
        kinds = [e.kind for e in await store.timeline(i.id)]
        assert kinds.count("arrive") == 1
        # the same question answered again (Twilio retrying): the same answer, the flow stays put
        g1b = await tw.post(PUBLIC + "/twilio/gather?n=1", _params(sid, Digits="2"))
        assert g1b.body == g1.body
        g2 = await tw.post(PUBLIC + "/twilio/gather?n=2", _params(sid, Digits="0"))
        assert "Enqueue" in _verbs(g2.body)
        g2b = await tw.post(PUBLIC + "/twilio/gather?n=2", _params(sid, Digits="0"))
        assert g2b.body == g2.body
        # an old question after the flow moved on does not move it back
        stale = await tw.post(PUBLIC + "/twilio/gather?n=7", _params(sid, Digits="1"))
        assert "Enqueue" in _verbs(stale.body)
        for _ in range(2):
            done = await tw.post(PUBLIC + "/twilio/status", _params(sid, CallStatus="completed"))
            assert done.status == 200
        kinds = [e.kind for e in await store.timeline(i.id)]
        assert kinds.count("queue") == 1 and kinds.count("ivr") == 1 and kinds.count("abandon") == 1
        i = await store.get_interaction(i.id)
        assert i.state == "abandoned"


async def test_unknown_calls_and_bad_parameters(database):
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        tw = rc.twilio
        before = await _interactions(store)
        ghost = "CA" + "f" * 32
        g = await tw.post(PUBLIC + "/twilio/gather?n=1", _params(ghost, Digits="1"))
        assert g.status == 200
        redirect = ET.fromstring(g.body).find("Redirect")
        assert redirect is not None and redirect.text == PUBLIC + "/twilio/voice"  # start again, never drop
        s = await tw.post(PUBLIC + "/twilio/status", _params(ghost, CallStatus="completed"))
        assert s.status == 200 and _verbs(s.body) == []
        for path in ("/twilio/wait", "/twilio/dial?a=1", "/twilio/connect?a=1"):
            r = await tw.post(PUBLIC + path, _params(ghost))
            assert r.status == 200 and _verbs(r.body) == ["Redirect"]
        assert await _interactions(store) == before
        for bad in ("CA../../etc", "CAé" + "0" * 30, "CA" + "0" * 70):
            bad_sid = await tw.post(PUBLIC + "/twilio/voice", _params(bad))
            assert bad_sid.status == 400, bad
        no_sid = await tw.post(PUBLIC + "/twilio/voice", {"From": REGULAR_PHONE})
        assert no_sid.status == 400
        assert await _interactions(store) == before

        sid = new_sid()
        await tw.post(PUBLIC + "/twilio/voice", _params(sid))
        huge = await tw.post(PUBLIC + "/twilio/gather?n=1", _params(sid, Digits="1" * 5000))
        assert huge.status == 400
        bad_n = await tw.post(PUBLIC + "/twilio/gather?n=x", _params(sid, Digits="1"))
        assert bad_n.status == 400
        flood = await tw.post(PUBLIC + "/twilio/gather?n=1", _params(sid, Digits="1" * 300))
        assert flood.status == 200 and "Gather" in _verbs(flood.body)  # asked again
        odd = await tw.post(PUBLIC + "/twilio/gather?n=2", _params(sid, Digits="<script>1"))
        assert odd.status == 200
        after = await tw.post(PUBLIC + "/twilio/gather?n=3", _params(sid, Digits="1"))  # English at last
        assert "Gather" in _verbs(after.body)
        await tw.post(PUBLIC + "/twilio/status", _params(sid, CallStatus="completed"))
        i = await store.find_interaction(sid)
        ivr = [e for e in await store.timeline(i.id) if e.kind == "ivr"][0]
        path = ivr.data["path"]
        assert any(p["event"] == "invalid" and "flood" in p.get("detail", "") for p in path)
        assert "<script>" not in str(path)
        assert ivr.data["result"].startswith("abandoned")


async def test_a_failing_step_is_logged_answers_500_and_the_retry_goes_on(database, monkeypatch):
    """A fault inside the center: 500 (Twilio then uses the number's fallback URL), the failure
    on the call's timeline; Twilio's retry of the same webhook answers it."""
    store = _store(database)
    await seed_people(store)
    async with running_twilio(database) as rc:
        tw, voice_store = rc.twilio, rc.center.voice.store
        real = voice_store.update_interaction
        calls = {"n": 0}

        async def flaky(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("disk on fire")
            return await real(*args, **kwargs)

        monkeypatch.setattr(voice_store, "update_interaction", flaky)
        sid = new_sid()
        await tw.post(PUBLIC + "/twilio/voice", _params(sid))
        await tw.post(PUBLIC + "/twilio/gather?n=1", _params(sid, Digits="1"))
        failed = await tw.post(PUBLIC + "/twilio/gather?n=2", _params(sid, Digits="0"))
        assert failed.status == 500
        retry = await tw.post(PUBLIC + "/twilio/gather?n=2", _params(sid, Digits="0"))
        assert retry.status == 200 and "Enqueue" in _verbs(retry.body)
        i = await store.find_interaction(sid)
        events = await store.timeline(i.id)
        err = [e for e in events if e.kind == "twilio_error"]
        assert err and err[0].ok is False and "disk on fire" in err[0].data["error"]
        assert err[0].data["path"] == "/twilio/gather"
        assert [e.kind for e in events].count("queue") == 1
        await tw.post(PUBLIC + "/twilio/status", _params(sid, CallStatus="completed"))
