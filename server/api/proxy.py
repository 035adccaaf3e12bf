"""The client's address behind a TLS reverse proxy (deploy/Caddyfile), for per-address throttles.

Only when the direct peer is one of `TELECONSULT_TRUSTED_PROXIES` is `X-Forwarded-For` read,
and then from the right: the rightmost address that is not itself a trusted proxy is the one
our proxy saw (anything further left was written by the client and proves nothing).
The address is used as a throttle key only; it is never logged (DESIGN §4).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from .keys import SETTINGS


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(request: web.Request) -> str:
    direct = request.remote or "unknown"
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted or not _is_trusted(direct, trusted):
        return direct
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return direct
