"""Settings: environment and TOML parsing, validation errors naming the setting, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Secret, load_settings
from server.errors import ConfigError


def test_defaults_bind_localhost_8080() -> None:
    s = load_settings(environ={})
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.base_url == "http://localhost:8080"


def test_environment_overrides_toml_and_flags_override_environment(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 9000\nhost = "0.0.0.0"\nstun_urls = ["stun:a:3478"]\n')
    s = load_settings(environ={"TELECONSULT_PORT": "9100"}, config_file=toml)
    assert s.port == 9100 and s.host == "0.0.0.0" and s.stun_urls == ("stun:a:3478",)
    s = load_settings(environ={"TELECONSULT_PORT": "9100"}, config_file=toml, overrides={"port": "9200"})
    assert s.port == 9200


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"TELECONSULT_PORT": "eighty"}, "TELECONSULT_PORT"),
        ({"TELECONSULT_PORT": "70000"}, "TELECONSULT_PORT"),
        ({"TELECONSULT_SESSION_IDLE_S": "0"}, "TELECONSULT_SESSION_IDLE_S"),
        ({"TELECONSULT_REDIS_URL": "http://x"}, "TELECONSULT_REDIS_URL"),
        ({"TELECONSULT_NO_SUCH_THING": "1"}, "TELECONSULT_NO_SUCH_THING"),
        ({"TELECONSULT_TLS_CERT": "/nonexistent/c.pem", "TELECONSULT_TLS_KEY": "/nonexistent/k.pem"},
         "TELECONSULT_TLS_CERT"),
    ],
)
def test_invalid_setting_is_named(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_secrets_never_show_in_repr() -> None:
    s = load_settings(environ={"TELECONSULT_REDIS_URL": "redis://:hunter2hunter2@db:6379/0",
                               "TELECONSULT_TURN_SECRET": "turn-shared-secret"})
    text = repr(s) + str(s.redis_url) + repr(s.turn_secret)
    assert "hunter2" not in text and "turn-shared-secret" not in text
    assert s.turn_secret.get() == "turn-shared-secret"
    assert repr(Secret("")) == "Secret('')"


def test_bad_toml_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, config_file=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings(environ={}, config_file=unknown)
