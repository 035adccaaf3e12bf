"""Liveness, readiness, the CSRF token endpoint and the CSP violation report sink."""

from __future__ import annotations

import logging

from aiohttp import web

from .bodies import read_body
from .keys import CSP_VIOLATIONS, READINESS, SETTINGS, STORE
from .readiness import readiness_report
from .request_schemas import CspReport
from .security import CSRF_COOKIE, new_csrf_token, set_csrf_cookie

log = logging.getLogger("teleconsult.csp")
routes = web.RouteTableDef()
MAX_CSP_REPORTS = 1000


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    status, body = await readiness_report(app[SETTINGS], app[STORE], app[READINESS])
    return web.json_response(body, status=status)


@routes.get("/api/csrf")
async def csrf_token(request: web.Request) -> web.Response:
    """Give the page a CSRF token (double-submit cookie); reuse the existing one if any."""
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = web.json_response({"csrf_token": token})
    set_csrf_cookie(response, token, request.app[SETTINGS])
    return response


@routes.post("/api/csp-report")
async def csp_report(request: web.Request) -> web.Response:
    """Browsers report CSP violations here; kept (bounded) for tests and logged by directive."""
    report = await read_body(request, CspReport)
    log.warning("CSP violation: %s", report.directive)
    violations = request.app[CSP_VIOLATIONS]
    if len(violations) < MAX_CSP_REPORTS:
        violations.append({"directive": report.directive, "blocked": report.blocked})
    return web.Response(status=204)
