from pathlib import Path

import pytest

from callcenter.settings import SettingsError, load_settings


def test_shipped_defaults_are_the_embedded_setup():
    s = load_settings(env={})
    assert s.database.url.startswith("sqlite+aiosqlite:///var/")
    assert s.http.port == 8080 and s.redis.url is None
    assert s.config_path(s.crm.rules_file).exists()


def test_environment_overrides_win():
    s = load_settings(env={
        "CC_DATABASE_URL": "postgresql+asyncpg://u@h/db",
        "CC_REDIS_URL": "redis://127.0.0.1:6379/1",
        "CC_HTTP_PORT": "9090",
        "CC_AMI__SECRET": "s3cret",
    })
    assert s.database.url == "postgresql+asyncpg://u@h/db"
    assert s.redis.url == "redis://127.0.0.1:6379/1"
    assert s.http.port == 9090
    assert s.ami.resolved_secret() == "s3cret"
    assert "s3cret" not in repr(s)


def test_bad_values_name_the_variable_and_the_problem():
    with pytest.raises(SettingsError) as e:
        load_settings(env={"CC_HTTP_PORT": "eighty", "CC_DATABASE_URL": "mysql://x/y",
                           "CC_AMI__BOGUS": "1"})
    text = str(e.value)
    assert "CC_HTTP_PORT" in text and "integer" in text
    assert "CC_DATABASE_URL" in text and "sqlite+aiosqlite" in text
    assert "CC_AMI__BOGUS: unknown setting" in text


def test_bad_yaml_file(tmp_path: Path):
    (tmp_path / "settings.yaml").write_text("http: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(tmp_path, env={})
    (tmp_path / "settings.yaml").write_text("http:\n  port: 70000\n")
    with pytest.raises(SettingsError, match=r"http\.port"):
        load_settings(tmp_path, env={})


def test_secret_file(tmp_path: Path):
    f = tmp_path / "ami.secret"
    f.write_text("from-file\n")
    s = load_settings(env={"CC_AMI__SECRET_FILE": str(f)})
    assert s.ami.resolved_secret() == "from-file"
