"""Settings, read once at start from TELECONSULT_* environment variables and an optional TOML file.

Only this module reads the environment. Precedence: explicit overrides (CLI flags) > environment >
TOML file > defaults. Every problem raises ConfigError with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

ENV_PREFIX = "TELECONSULT_"
E2EE_POLICIES = ("required", "preferred", "off")


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
    # Workers and nodes on Redis (docs/cluster.md). Only with a Redis URL.
    workers: int = 0  # `serve --workers N`; 0: one per core with Redis, one process without
    node_id: str = ""  # this process's id in the cluster; empty: host-pid-random
    cluster_heartbeat_s: float = 1.0  # node heartbeat and lease renewal period
    cluster_node_ttl_s: float = 4.0  # a node silent this long counts as dead
    cluster_lease_ttl_s: float = 4.0  # a lease lapses this long after its owner stopped renewing
    cluster_idle_release_s: float = 30.0  # an owned consultation with no socket is released after this
    # Each node re-announces the accounts it holds dashboards of this often; a remote entry lapses
    # after three periods without one (docs/cluster.md "The doctor's dashboard").
    cluster_dashboard_announce_s: float = 10.0
    drain_timeout_s: float = 4 * 3600.0  # a drain waits this long at most for running calls
    # Staff sessions (DESIGN §4).
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 3600
    reauth_window_s: int = 5 * 60
    # How often the server re-checks the staff session behind each open host WebSocket (catches
    # revocations made by another process, e.g. the CLI, and idle/absolute expiry).
    staff_session_recheck_s: float = 0.5
    setup_token_ttl_s: int = 3600
    # Staff sign-in policy (docs/passkeys.md): the second factors accepted at login ("totp",
    # "passkey" or "either"), who must have a passkey ("none", "admins" or "everyone"), whether a
    # passkey with user verification may sign in without the password, and the idle timeout of
    # a session opened with "this is a shared computer".
    second_factor: str = "either"
    passkeys_required_for: str = "none"
    passkey_passwordless: bool = True
    shared_computer_idle_s: int = 5 * 60
    # Passwords (NIST SP 800-63B): a minimum length, no composition rules.
    password_min_length: int = 12
    enrol_token_ttl_s: int = 72 * 3600
    # Consultations.
    invite_ttl_s: int = 24 * 3600
    room_token_ttl_s: int = 60
    max_participants_default: int = 4
    # WebSockets not yet authenticated (before hello): per client address and in total.
    ws_unauthenticated_per_address: int = 20
    ws_unauthenticated_total: int = 500
    # WebRTC.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: Secret = field(default_factory=lambda: Secret(""))
    turn_ttl_s: int = 3600
    ice_host_addresses: tuple[str, ...] = ()  # restrict the addresses the server gathers on
    ice_announce_address: str = ""  # public address for 1:1 NAT
    ice_transport_policy: str = "all"  # browsers' iceTransportPolicy: "all" | "relay" (TURN only)
    peer_connect_timeout_s: float = 20.0
    # A participant whose socket is gone keeps its place in the call until its media has been
    # silent this long (it may come back after a network change: docs/sfu.md "Reconnection").
    reconnect_grace_s: float = 15.0
    media_path: str = "packet"  # packet | frame (frame: only until its figures are compared)
    # Recording.
    kek_file: Path | None = None  # default: data_dir / "kek.json"
    recording_retention_days: int = 30
    consent_text_version: str = "2026-11-1"
    # End-to-end encryption (docs/e2ee.md): the default policy of new consultations.
    e2ee_policy: str = "required"  # required | preferred | off
    # The clinic's recording private key passphrase, for `keys recording-keypair`,
    # `recordings open` and `recordings export --recording-key` run by automation (else a prompt).
    recording_key_passphrase: Secret = field(default_factory=lambda: Secret(""))
    # Integrations (docs/integrations.md): API keys and signed webhooks.
    integration_rate_limit_per_min: int = 120  # default per key; `integrations create` may set another
    webhook_allow_http_loopback: bool = False  # tests/dev only: http://127.0.0.1 / localhost URLs
    webhook_backoff_base_s: float = 30.0  # retry n waits base * 2^(n-1), capped below
    webhook_backoff_max_s: float = 3600.0
    webhook_max_attempts: int = 15
    webhook_poll_s: float = 5.0  # the worker also looks at the outbox this often
    webhook_timeout_s: float = 10.0
    webhook_secret_overlap_s: int = 24 * 3600  # a rotated secret keeps signing this long
    # Operation.
    log_level: str = "INFO"
    trusted_origins: tuple[str, ...] = ()
    # Operation (docs/deployment.md): metrics off unless one of the two is set; JSON-lines logs.
    trusted_proxies: tuple[str, ...] = ()  # reverse proxies whose X-Forwarded-For is believed
    metrics_listen: str = ""  # "host:port" of a separate /metrics listener
    metrics_token: Secret = field(default_factory=lambda: Secret(""))  # /metrics on the main app
    log_format: str = "text"  # "text" | "json"
    drain_grace_s: float = 0.0  # after SIGTERM: /readyz says draining this long before stopping
    backup_passphrase: Secret = field(default_factory=lambda: Secret(""))  # for unattended backups

    @property
    def tls_enabled(self) -> bool:
        """TLS here, or at a reverse proxy in front (an https:// public URL, deploy/Caddyfile):
        either way cookies are Secure (__Host-) and HSTS is sent."""
        return bool(self.tls_cert or self.tls_self_signed) or self.public_url.startswith("https://")

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_enabled else "http"
        host = "localhost" if self.host in ("127.0.0.1", "::1", "0.0.0.0", "") else self.host  # noqa: S104
        return f"{scheme}://{host}:{self.port}"

    @property
    def webauthn_origin(self) -> str:
        """The origin passkeys are bound to: scheme://host[:port] of the public URL."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def webauthn_rp_id(self) -> str:
        """The WebAuthn relying party id: the public URL's host name (no port)."""
        return urlsplit(self.base_url).hostname or "localhost"

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
                 "setup_token_ttl_s", "enrol_token_ttl_s", "turn_ttl_s", "reauth_window_s",
                 "shared_computer_idle_s"):
        if getattr(s, name) <= 0:
            raise bad(name, "must be a positive number of seconds")
    if not 0 < s.staff_session_recheck_s <= 60:
        raise bad("staff_session_recheck_s", "must be more than 0 and at most 60 seconds")
    for name in ("ws_unauthenticated_per_address", "ws_unauthenticated_total"):
        if getattr(s, name) < 1:
            raise bad(name, "must be at least 1")
    for name in ("integration_rate_limit_per_min", "webhook_backoff_base_s", "webhook_backoff_max_s",
                 "webhook_max_attempts", "webhook_poll_s", "webhook_timeout_s"):
        if getattr(s, name) <= 0:
            raise bad(name, "must be positive")
    if s.webhook_secret_overlap_s < 0:
        raise bad("webhook_secret_overlap_s", "must be zero or more seconds")
    if not 2 <= s.max_participants_default <= 8:
        raise bad("max_participants_default", "must be between 2 and 8")
    if s.second_factor not in ("totp", "passkey", "either"):
        raise bad("second_factor", "must be totp, passkey or either")
    if s.passkeys_required_for not in ("none", "admins", "everyone"):
        raise bad("passkeys_required_for", "must be none, admins or everyone")
    if s.second_factor == "totp" and s.passkeys_required_for != "none":
        raise bad("passkeys_required_for", "passkeys cannot be required while second_factor is totp")
    if not 8 <= s.password_min_length <= 64:
        raise bad("password_min_length", "must be between 8 and 64 characters")
    if s.recording_retention_days < 1:
        raise bad("recording_retention_days", "must be at least 1 day")
    if s.redis_url and not s.redis_url.get().startswith(("redis://", "rediss://", "unix://")):
        raise bad("redis_url", "must start with redis://, rediss:// or unix://")
    if s.reconnect_grace_s <= 0:
        raise bad("reconnect_grace_s", "must be positive")
    if s.media_path not in ("packet", "frame"):
        raise bad("media_path", "must be packet or frame")
    if s.ice_transport_policy not in ("all", "relay"):
        raise bad("ice_transport_policy", "must be all or relay")
    if s.e2ee_policy not in E2EE_POLICIES:
        raise bad("e2ee_policy", "must be required, preferred or off")
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise bad("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    _validate_operation(s, bad)


def _validate_operation(s: Settings, bad: Callable[[str, str], ConfigError]) -> None:
    if s.metrics_listen:
        host, sep, port = s.metrics_listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise bad("metrics_listen", "must be host:port, e.g. 127.0.0.1:9108")
    if s.metrics_token and len(s.metrics_token.get()) < 16:
        raise bad("metrics_token", "must be at least 16 characters")
    for entry in s.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise bad("trusted_proxies", f"{entry!r} is not an IP address or network") from None
    if s.log_format not in ("text", "json"):
        raise bad("log_format", "must be text or json")
    if s.workers < 0 or s.workers > 256:
        raise bad("workers", "must be 0 (automatic) to 256")
    if s.node_id and not all(c.isalnum() or c in "-_." for c in s.node_id):
        raise bad("node_id", "only letters, digits, - _ .")
    if not 0 < s.cluster_heartbeat_s < s.cluster_node_ttl_s or s.cluster_lease_ttl_s <= s.cluster_heartbeat_s:
        raise bad("cluster_heartbeat_s",
                  "must be positive and shorter than cluster_node_ttl_s and cluster_lease_ttl_s")
    if s.cluster_dashboard_announce_s < s.cluster_heartbeat_s:
        raise bad("cluster_dashboard_announce_s", "must be at least cluster_heartbeat_s")
    if s.cluster_idle_release_s < 0 or s.drain_timeout_s < 0:
        raise bad("cluster_idle_release_s", "durations must be zero or more seconds")
    if s.drain_grace_s < 0:
        raise bad("drain_grace_s", "must be zero or a positive number of seconds")


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
