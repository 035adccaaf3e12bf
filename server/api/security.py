"""HTTP security: response headers (DESIGN §4), Origin checks and CSRF double-submit tokens."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from ..config import Settings
from ..errors import Forbidden

CSRF_COOKIE = "tc_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The integration REST routes (api/integration_routes.py): bearer API keys, no cookies.
INTEGRATION_PREFIX = "/api/v1/integration/"

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "report-uri /api/csp-report",
    )
)


def security_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": (
            "camera=(self), microphone=(self), display-capture=(self), geolocation=(), "
            "payment=(), usb=()"
        ),
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if settings.tls_enabled:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


def own_origins(request: web.Request, settings: Settings) -> set[str]:
    origins = {f"{request.scheme}://{request.host}"}
    if settings.public_url:
        origins.add(settings.public_url.rstrip("/"))
    origins.update(o.rstrip("/") for o in settings.trusted_origins)
    return origins


def check_origin(request: web.Request, settings: Settings, *, required: bool) -> None:
    """Refuse a foreign Origin. `required`: a missing Origin is refused too (WebSocket, POST)."""
    origin = request.headers.get("Origin")
    if origin is None:
        if required:
            raise Forbidden("This request must come from the teleconsult page.", code="origin_required")
        return
    if origin not in own_origins(request, settings):
        raise Forbidden("Cross-origin request refused.", code="bad_origin")


def is_bearer_route(request: web.Request) -> bool:
    """The request was routed to an integration route (by the route that matched, not by
    the raw path, so no path trick reaches another handler without CSRF)."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical.startswith(INTEGRATION_PREFIX)


def check_no_bearer(request: web.Request) -> None:
    """An API key is for the integration routes only: anywhere else under /api/ it gets 403
    (so no key ever reaches recordings, accounts or the audit log, whatever its scopes)."""
    if request.headers.get("Authorization", "").lower().startswith("bearer"):
        raise Forbidden("API keys work only on /api/v1/integration/.", code="api_key_not_allowed")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(request: web.Request) -> None:
    """Double-submit: the X-CSRF-Token header must equal the tc_csrf cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not header or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise Forbidden("Missing or invalid CSRF token; reload the page.", code="csrf")


def set_private_cookie(
    response: web.StreamResponse, name: str, value: str, settings: Settings, *, path: str = "/",
    max_age: int | None = None,
) -> None:
    """A cookie scripts cannot read: HttpOnly, SameSite=Strict, Secure under TLS."""
    response.set_cookie(name, value, path=path, httponly=True, samesite="Strict",
                        secure=settings.tls_enabled, max_age=max_age)


def clear_private_cookie(
    response: web.StreamResponse, name: str, settings: Settings, *, path: str = "/"
) -> None:
    response.del_cookie(name, path=path, httponly=True, samesite="Strict", secure=settings.tls_enabled)


def set_csrf_cookie(response: web.StreamResponse, token: str, settings: Settings) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, path="/", secure=settings.tls_enabled, httponly=False, samesite="Strict"
    )
