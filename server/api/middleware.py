"""Middleware: request ids, domain errors → JSON, security headers, Origin + CSRF on writes."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web, web_response

from ..errors import DomainError, RateLimited
from ..logs import request_id_var
from .keys import SETTINGS
from .security import (
    SAFE_METHODS,
    check_csrf,
    check_no_bearer,
    check_origin,
    is_bearer_route,
    security_headers,
)

log = logging.getLogger("teleconsult.http")

REQUEST_ID = web.RequestKey("request_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: DomainError, request_id: str) -> web.Response:
    body = {"error": {"code": exc.code, "message": exc.message, "request_id": request_id}}
    response = web.json_response(body, status=exc.status)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(int(exc.retry_after_s + 0.999))
    return response


access_log = logging.getLogger("teleconsult.access")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id (in logs and X-Request-Id), Origin + CSRF on writes, errors as JSON, access log."""
    started = time.monotonic()
    request_id = secrets.token_hex(8)
    token = request_id_var.set(request_id)
    request[REQUEST_ID] = request_id
    status = 500
    try:
        response = await _respond(request, handler, request_id)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        _log_access(request, status, started)
        request_id_var.reset(token)


def _log_access(request: web.Request, status: int, started: float) -> None:
    """One line per request: method, path (never the query string), status, duration.
    No client address (DESIGN §4: no IP-to-name links). Paths carry ids only; the invite
    token travels in the URL fragment, which never reaches the server."""
    elapsed_ms = (time.monotonic() - started) * 1000
    access_log.info("%s %s %d %.1fms", request.method, request.rel_url.path, status, elapsed_ms)


async def _respond(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    try:
        if is_bearer_route(request):
            pass  # bearer API key, no cookie: no Origin/CSRF (api/integration_routes.py)
        elif request.path.startswith("/api/"):
            check_no_bearer(request)
            if request.method not in SAFE_METHODS:
                check_origin(request, settings, required=True)
                if request.path != "/api/csp-report":
                    check_csrf(request)
        return await handler(request)
    except DomainError as exc:
        if exc.status >= 500:
            log.warning("domain error %s on %s %s", exc.code, request.method, request.path)
        return error_response(exc, request_id)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return web.json_response(
            {"error": {"code": f"http_{exc.status}", "message": exc.reason, "request_id": request_id}},
            status=exc.status,
        )
    except Exception:
        resource = request.match_info.route.resource
        log.exception("unhandled error on %s %s", request.method, resource.canonical if resource else "?")
        return web.json_response(
            {"error": {"code": "internal", "message": "Internal error.", "request_id": request_id}},
            status=500,
        )


# aiohttp writes `Server: Python/3.x aiohttp/3.y` on every response; `add_security_headers`
# removes it from the application's, but the answers aiohttp's protocol handler makes itself (a
# malformed request line or header: 400) never reach `on_response_prepare`. Its default value
# is a module constant: the name alone replaces it there (process-wide, idempotent).
SERVER_NAME = "teleconsult"


def hide_server_banner() -> None:
    """No software versions in the responses aiohttp's protocol handler writes itself."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]  # aiohttp's default


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, static files and WebSocket upgrades included."""
    response.headers.popall("Server", None)  # aiohttp's banner names its and Python's versions
    response.headers.update(security_headers(request.app[SETTINGS]))
    if REQUEST_ID in request:
        response.headers["X-Request-Id"] = request[REQUEST_ID]
    response.headers.setdefault("Cache-Control", "no-store")
