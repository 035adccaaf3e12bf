"""Liveness, readiness, the CSRF token endpoint and the CSP violation report sink."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..errors import DomainError, PayloadTooLarge
from .keys import CSP_VIOLATIONS, SETTINGS, STORE
from .security import new_csrf_token, set_csrf_cookie

log = logging.getLogger("teleconsult.csp")
routes = web.RouteTableDef()
MAX_CSP_REPORTS = 1000


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORE].ping()
    except DomainError:
        return web.json_response({"status": "unavailable", "store": "unreachable"}, status=503)
    return web.json_response({"status": "ready"})


@routes.get("/api/csrf")
async def csrf_token(request: web.Request) -> web.Response:
    """Give the page a CSRF token (double-submit cookie); reuse the existing one if any."""
    from .security import CSRF_COOKIE

    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = web.json_response({"csrf_token": token})
    set_csrf_cookie(response, token, request.app[SETTINGS])
    return response


@routes.post("/api/csp-report")
async def csp_report(request: web.Request) -> web.Response:
    """Browsers report CSP violations here; kept (bounded) for tests and logged by directive."""
    if (request.content_length or 0) > 16_384:
        raise PayloadTooLarge()
    raw = await request.read()
    try:
        report = json.loads(raw or b"{}").get("csp-report", {})
    except (ValueError, AttributeError):
        report = {}
    directive = str(report.get("violated-directive", "?"))[:64]
    log.warning("CSP violation: %s", directive)
    violations = request.app[CSP_VIOLATIONS]
    if len(violations) < MAX_CSP_REPORTS:
        violations.append({"directive": directive, "blocked": str(report.get("blocked-uri", ""))[:200]})
    return web.Response(status=204)
