"""Settings, read once at start from TELECONSULT_* environment variables and an optional TOML file.

Only this module reads the environment. Precedence: explicit overrides (CLI flags) > environment >
TOML file > defaults. Every problem raises ConfigError with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "TELECONSULT_"


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(other._value.encode(), self._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    recordings_dir: Path = Path("recordings")
    # Public base URL used in links (invites, setup). Empty: derived from host/port/TLS.
    public_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_self_signed: bool = False
    # Store: SQLite in data_dir unless a Redis URL is given.
    redis_url: Secret = field(default_factory=lambda: Secret(""))
    redis_prefix: str = "teleconsult:"
    # Staff sessions (DESIGN §4).
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 3600
    reauth_window_s: int = 5 * 60
    setup_token_ttl_s: int = 3600
    enrol_token_ttl_s: int = 72 * 3600
    # Consultations.
    invite_ttl_s: int = 24 * 3600
    room_token_ttl_s: int = 60
    max_participants_default: int = 4
    # WebRTC.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: Secret = field(default_factory=lambda: Secret(""))
    turn_ttl_s: int = 3600
    ice_host_addresses: tuple[str, ...] = ()  # restrict the addresses the server gathers on
    ice_announce_address: str = ""  # public address for 1:1 NAT
    peer_connect_timeout_s: float = 20.0
    # Recording.
    kek_file: Path | None = None  # default: data_dir / "kek.json"
    recording_retention_days: int = 30
    consent_text_version: str = "2026-11-1"
    # Operation.
    log_level: str = "INFO"
    trusted_origins: tuple[str, ...] = ()

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert or self.tls_self_signed)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_enabled else "http"
        host = "localhost" if self.host in ("127.0.0.1", "::1", "0.0.0.0", "") else self.host  # noqa: S104
        return f"{scheme}://{host}:{self.port}"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "teleconsult.sqlite3"

    @property
    def kek_path(self) -> Path:
        return self.kek_file or self.data_dir / "kek.json"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _convert(name: str, raw: Any) -> Any:
    f = _FIELDS[name]
    kind = str(f.type)
    try:
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            value: Any = int(raw)
        elif kind == "float":
            value = float(raw)
        elif kind == "bool":
            if isinstance(raw, bool):
                value = raw
            elif str(raw).lower() in ("1", "true", "yes", "on"):
                value = True
            elif str(raw).lower() in ("0", "false", "no", "off", ""):
                value = False
            else:
                raise ValueError
        elif kind == "Path":
            value = Path(str(raw))
        elif kind == "Path | None":
            value = Path(str(raw)) if raw not in (None, "") else None
        elif kind == "Secret":
            value = raw if isinstance(raw, Secret) else Secret(str(raw))
        elif kind == "tuple[str, ...]":
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            value = tuple(str(i).strip() for i in items if str(i).strip())
        else:
            value = str(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"invalid setting {ENV_PREFIX}{name.upper()}: expected {kind}, got {_shown(name, raw)}"
        ) from None
    return value


def _shown(name: str, raw: Any) -> str:
    return "a hidden value" if str(_FIELDS[name].type) == "Secret" else repr(raw)


def _validate(s: Settings) -> None:
    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"invalid setting {ENV_PREFIX}{name.upper()}: {why}")

    if not 0 <= s.port <= 65535:
        raise bad("port", f"{s.port} is not a TCP port (0-65535)")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise bad("tls_key" if s.tls_cert else "tls_cert", "TLS needs both a certificate and a key")
    for name in ("tls_cert", "tls_key"):
        p = getattr(s, name)
        if p is not None:
            try:
                with open(p, "rb") as fh:
                    fh.read(1)
            except OSError as exc:
                raise bad(name, f"cannot read {p}: {exc.strerror}") from None
    for name in ("session_idle_s", "session_absolute_s", "invite_ttl_s", "room_token_ttl_s",
                 "setup_token_ttl_s", "enrol_token_ttl_s", "turn_ttl_s", "reauth_window_s"):
        if getattr(s, name) <= 0:
            raise bad(name, "must be a positive number of seconds")
    if not 2 <= s.max_participants_default <= 8:
        raise bad("max_participants_default", "must be between 2 and 8")
    if s.recording_retention_days < 1:
        raise bad("recording_retention_days", "must be at least 1 day")
    if s.redis_url and not s.redis_url.get().startswith(("redis://", "rediss://", "unix://")):
        raise bad("redis_url", "must start with redis://, rediss:// or unix://")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise bad("log_level", "must be DEBUG, INFO, WARNING or ERROR")


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from TOML, environment and overrides. Raises ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(f"{ENV_PREFIX}CONFIG") else None)
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for key, raw in data.items():
            if key not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {path}")
            values[key] = _convert(key, raw)
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == f"{ENV_PREFIX}CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name.startswith("test_"):
            continue  # the test harness's own variables
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {key}")
        values[name] = _convert(name, raw)
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in _FIELDS:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _convert(key, raw)
    settings = Settings(**values)
    _validate(settings)
    return settings
