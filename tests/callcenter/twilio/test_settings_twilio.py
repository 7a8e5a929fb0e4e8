"""The twilio settings: the token from the environment or a file, never in a repr; a clear error
when Twilio is enabled without credentials."""
from __future__ import annotations

import pytest

from callcenter.app import init_app
from callcenter.settings import SettingsError, load_settings
from tests.http import serve


def test_token_from_env_or_file_and_never_in_repr(tmp_path):
    s = load_settings(env={"CC_TWILIO__ENABLED": "true", "CC_TWILIO__ACCOUNT_SID": "AC1",
                           "CC_TWILIO__AUTH_TOKEN": "s3cret-token"})
    assert s.twilio.enabled and s.twilio.resolved_token() == "s3cret-token"
    assert "s3cret-token" not in repr(s) and "s3cret-token" not in str(s.twilio)
    f = tmp_path / "token"
    f.write_text("from-a-file\n")
    s = load_settings(env={"CC_TWILIO__AUTH_TOKEN_FILE": str(f)})
    assert s.twilio.resolved_token() == "from-a-file"
    with pytest.raises(SettingsError, match="CC_TWILIO__DIAL_TIMEOUT_S"):
        load_settings(env={"CC_TWILIO__DIAL_TIMEOUT_S": "1"})


async def test_enabled_without_credentials_does_not_start(database):
    s = load_settings(env={"CC_TWILIO__ENABLED": "true", "CC_CHAT__ENABLED": "false",
                           "CC_EMAIL__ENABLED": "false"})
    app = init_app(s, database=database)
    with pytest.raises(RuntimeError, match="twilio.account_sid and twilio.auth_token"):
        async with serve(app):
            pass
