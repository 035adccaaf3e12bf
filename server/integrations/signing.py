"""Webhook signing (docs/integrations.md "Verifying a delivery"): HMAC-SHA256 over
`timestamp + "." + body`, hex, sent as `Teleconsult-Signature: v1=<hex>[, v1=<hex>]` with
`Teleconsult-Timestamp: <unix seconds>`. During a secret rotation's overlap window each
delivery carries one signature per valid secret, so a receiver holding either one verifies it.
Webhook URLs must be https; plain http only to 127.0.0.1/localhost when a setting allows it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import urllib.parse
from collections.abc import Iterable

from ..errors import InvalidInput

TIMESTAMP_HEADER = "Teleconsult-Timestamp"
SIGNATURE_HEADER = "Teleconsult-Signature"
EVENT_ID_HEADER = "Teleconsult-Event-Id"
EVENT_TYPE_HEADER = "Teleconsult-Event"
REPLAY_WINDOW_S = 300  # what receivers are told to accept (docs/integrations.md)
URL_MAX = 2048
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    return ", ".join(f"v1={signature(s, timestamp, body)}" for s in secrets)


def check_webhook_url(raw: object, *, allow_loopback_http: bool) -> str:
    """An absolute https URL without credentials or fragment (http only to loopback when
    allowed). InvalidInput otherwise; the message never echoes the URL."""
    if not isinstance(raw, str) or not raw or len(raw) > URL_MAX or raw != raw.strip():
        raise InvalidInput("The webhook URL must be an https:// URL.", code="invalid_webhook_url")
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port
    except ValueError:
        raise InvalidInput("The webhook URL is not a valid URL.", code="invalid_webhook_url") from None
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password or parts.fragment:
        raise InvalidInput(
            "The webhook URL needs a host and no user, password or #fragment.",
            code="invalid_webhook_url",
        )
    if parts.scheme == "https":
        return raw
    if parts.scheme == "http" and allow_loopback_http and _is_loopback(host) and port is not None:
        return raw
    raise InvalidInput(
        "The webhook URL must use https:// (plain http only to localhost when"
        " TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK is set, for tests).",
        code="invalid_webhook_url",
    )


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
