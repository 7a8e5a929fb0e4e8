"""Secrets: the AMI secret and the Twilio auth token are read from the environment or a file and
never reach the logs (every log record at DEBUG captured during a real AMI login against the
simulator, a refused login, and signed and unsigned Twilio webhooks); settings never print them."""
from __future__ import annotations

import logging

import pytest

from callcenter.app import init_app
from callcenter.asterisk.ami_client import AMIAuthenticationError, AMIClient
from callcenter.asterisk.simulator import Simulator
from callcenter.keys import TELEPHONY
from callcenter.settings import load_settings
from tests.callcenter.twilio.harness import PUBLIC, running_twilio
from tests.callcenter.twilio.sim import ACCOUNT_SID, AUTH_TOKEN, new_sid
from tests.callcenter.voice_harness import REGULAR_PHONE
from tests.http import serve

pytestmark = pytest.mark.timeout(60)
AMI_SECRET = "ami-s3cret-Zq8wPx1v"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything our code logged (the simulator is the PBX, not us), with tracebacks."""
    out = []
    for r in caplog.records:
        if r.name.startswith("callcenter.asterisk.simulator"):
            continue
        out.append(r.getMessage())
        if r.exc_info:
            out.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(out)


def test_secrets_come_from_the_environment_or_a_file_and_never_print(tmp_path) -> None:
    path = tmp_path / "ami.secret"
    path.write_text(AMI_SECRET + "\n")
    tw = tmp_path / "twilio.token"
    tw.write_text(AUTH_TOKEN + "\n")
    by_file = load_settings(env={"CC_AMI__SECRET_FILE": str(path), "CC_TWILIO__AUTH_TOKEN_FILE": str(tw)})
    assert by_file.ami.resolved_secret() == AMI_SECRET
    assert by_file.twilio.resolved_token() == AUTH_TOKEN
    by_env = load_settings(env={"CC_AMI_SECRET": AMI_SECRET, "CC_TWILIO__AUTH_TOKEN": AUTH_TOKEN})
    assert by_env.ami.resolved_secret() == AMI_SECRET and by_env.twilio.resolved_token() == AUTH_TOKEN
    for shown in (repr(by_env), str(by_env), repr(by_env.ami), repr(by_env.twilio)):
        assert AMI_SECRET not in shown and AUTH_TOKEN not in shown


async def test_ami_secret_never_logged(database, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret_file = tmp_path / "ami.secret"
    secret_file.write_text(AMI_SECRET)
    sim = Simulator(agi_target=None, ami_users={"cc": AMI_SECRET})
    await sim.start()
    try:
        settings = load_settings(env={
            "CC_DEMO__ENABLED": "false", "CC_AMI__ENABLED": "true", "CC_AMI__PORT": str(sim.ami_port),
            "CC_AMI__USERNAME": "cc", "CC_AMI__SECRET_FILE": str(secret_file), "CC_AGI__ENABLED": "false",
            "CC_CHAT__DEMO_SITE_PORT": ""})
        app = init_app(settings, database=database)
        async with serve(app):
            ami = app[TELEPHONY].ami
            assert ami is not None
            assert (await ami.ping()).ok  # logged in with the secret from the file
        for auth in ("md5", "plain"):  # a refused login (the PBX's secret is another) logs no secret
            client = AMIClient("127.0.0.1", sim.ami_port, "cc", AMI_SECRET + "-wrong", auth=auth)
            with pytest.raises(AMIAuthenticationError) as refused:
                await client.start()
            await client.close()
            assert AMI_SECRET not in str(refused.value)
    finally:
        await sim.close()
    text = _logged(caplog)
    assert "AMI connected" in text  # the capture did see our logs
    assert AMI_SECRET not in text


async def test_twilio_token_never_logged(database, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "twilio.token"
    token_file.write_text(AUTH_TOKEN)
    async with running_twilio(database, CC_TWILIO__AUTH_TOKEN="",
                              CC_TWILIO__AUTH_TOKEN_FILE=str(token_file)) as rc:
        params = {"AccountSid": ACCOUNT_SID, "CallSid": new_sid(), "From": REGULAR_PHONE,
                  "To": "+15550001000", "CallStatus": "ringing", "Direction": "inbound"}
        signed = await rc.twilio.post(PUBLIC + "/twilio/voice", params)
        assert signed.status == 200  # checked against the token from the file
        for bad in (None, "AAAA"):
            assert (await rc.twilio.post(PUBLIC + "/twilio/voice", params, signature=bad)).status == 403
    text = _logged(caplog)
    assert "twilio" in text.lower()
    assert AUTH_TOKEN not in text
