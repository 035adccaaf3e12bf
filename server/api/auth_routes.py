"""Staff authentication over HTTP (docs/api.md, "Staff authentication").

Origin and CSRF are already enforced on every non-GET /api/ request by the middleware.
`setup_auth(app)` adds the routes and a cleanup context that builds the services and, while no
account exists, prints the one-time setup link (stdout, one line; never logged).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..auth.accounts import Account
from ..auth.services import AuthServices
from ..auth.sessions import Session
from ..config import Settings
from ..errors import InvalidInput, NotFound, Unauthenticated
from .auth_context import AUTH, require_recent_auth, require_staff, session_cookie_name, session_token
from .keys import AUDIT, CLOCK, SETTINGS, STORE
from .security import (
    CSRF_COOKIE,
    clear_private_cookie,
    new_csrf_token,
    set_csrf_cookie,
    set_private_cookie,
)

log = logging.getLogger("teleconsult.auth")
routes = web.RouteTableDef()

ENROL_COOKIE = "tc_enrol"
ENROL_COOKIE_TLS = "__Host-tc_enrol"
MAX_FIELD = 512


# -- boundary: request bodies into frozen dataclasses ---------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The body must be a JSON object.") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise InvalidInput(f"The field {name!r} is required (a non-empty string).", code="invalid_input")
    return value


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


@dataclass(frozen=True)
class SecondFactor:
    code: str | None
    recovery_code: str | None


def _second_factor(data: dict[str, Any], *, allow_password: bool = False) -> tuple[SecondFactor, str | None]:
    code = _text(data, "code", required=False)
    recovery = _text(data, "recovery_code", required=False)
    password = _text(data, "password", required=False) if allow_password else None
    if sum(x is not None for x in (code, recovery, password)) != 1:
        raise InvalidInput("Send exactly one of the accepted factors.", code="invalid_input")
    return SecondFactor(code, recovery), password


# -- cookies ------------------------------------------------------------------------------------


def _enrol_cookie_name(settings: Settings) -> str:
    return ENROL_COOKIE_TLS if settings.tls_enabled else ENROL_COOKIE


def set_session_cookie(response: web.StreamResponse, token: str, settings: Settings) -> None:
    set_private_cookie(response, session_cookie_name(settings), token, settings)


def clear_session_cookie(response: web.StreamResponse, settings: Settings) -> None:
    clear_private_cookie(response, session_cookie_name(settings), settings)


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


def _account_json(account: Account) -> dict[str, str]:
    return {"id": account.id, "email": account.email, "display_name": account.display_name,
            "role": account.role}


# -- enrolment ----------------------------------------------------------------------------------


@routes.post("/api/enrol/start")
async def enrol_start(request: web.Request) -> web.Response:
    token = _text(await _body(request), "token")
    started = await request.app[AUTH].enrolment.start(str(token))
    response = web.json_response({
        "enrolment_id": started.enrolment_id, "email": started.email,
        "needs_identity": started.email is None, "totp_secret": started.totp_secret,
        "totp_uri": started.totp_uri, "qr_svg": started.qr_svg,
    })
    settings = request.app[SETTINGS]
    set_private_cookie(response, _enrol_cookie_name(settings), started.binding, settings, max_age=30 * 60)
    return response


@routes.post("/api/enrol/finish")
async def enrol_finish(request: web.Request) -> web.Response:
    data = await _body(request)
    settings = request.app[SETTINGS]
    result = await request.app[AUTH].enrolment.finish(
        str(_text(data, "enrolment_id")),
        request.cookies.get(_enrol_cookie_name(settings), ""),
        password=str(_text(data, "password")),
        code=str(_text(data, "code")),
        email=_text(data, "email", required=False),
        display_name=_text(data, "display_name", required=False),
    )
    log.info("account %s enrolled", result.account.id)
    response = web.json_response({"recovery_codes": result.recovery_codes})
    clear_private_cookie(response, _enrol_cookie_name(settings), settings)
    return response


# -- login / logout -----------------------------------------------------------------------------


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    data = await _body(request)
    creds = Credentials(str(_text(data, "email")), str(_text(data, "password")))
    result = await request.app[AUTH].login.password_step(creds.email, creds.password, _address(request))
    response = web.json_response({"mfa_required": True})
    set_session_cookie(response, result.token, request.app[SETTINGS])
    return response


@routes.post("/api/login/mfa")
async def login_mfa(request: web.Request) -> web.Response:
    factor, _ = _second_factor(await _body(request))
    result = await request.app[AUTH].login.mfa_step(
        session_token(request) or "", _address(request), code=factor.code, recovery_code=factor.recovery_code,
    )
    log.info("account %s signed in", result.account.id)
    response = web.json_response({"account": _account_json(result.account)})
    set_session_cookie(response, result.token, request.app[SETTINGS])
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    auth = request.app[AUTH]
    token = session_token(request)
    if token is not None:
        session = await auth.sessions.get(token, touch=False)
        if session is not None and await auth.sessions.revoke(session.id_hash):
            await request.app[AUDIT].record("session.revoked", actor=session.account_id,
                                            target={"account": session.account_id}, outcome="logout")
    response = web.Response(status=204)
    clear_session_cookie(response, request.app[SETTINGS])
    return response


# -- the signed-in user -------------------------------------------------------------------------


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    principal = await require_staff(request)
    session = await request.app[AUTH].sessions.get_by_hash(principal.session_id_hash, touch=False)
    if session is None:
        raise Unauthenticated("Your session has ended; please sign in again.")
    settings = request.app[SETTINGS]
    csrf = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = web.json_response({
        "id": principal.account_id, "email": principal.email, "display_name": principal.display_name,
        "role": principal.role, "csrf_token": csrf, "idle_timeout_s": settings.session_idle_s,
        "session_expires_at": session.expires_at,
    })
    set_csrf_cookie(response, csrf, settings)
    return response


def _session_json(session: Session, current_hash: str) -> dict[str, Any]:
    return {"id_hint": session.id_hint, "created_at": session.created_at, "last_seen": session.last_seen,
            "current": session.id_hash == current_hash}


@routes.get("/api/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    principal = await require_staff(request)
    sessions = await request.app[AUTH].sessions.for_account(principal.account_id)
    return web.json_response([_session_json(s, principal.session_id_hash) for s in sessions
                              if s.stage == "auth"])


@routes.delete("/api/sessions/{id_hint}")
async def end_session(request: web.Request) -> web.Response:
    principal = await require_staff(request)
    hint = request.match_info["id_hint"]
    auth = request.app[AUTH]
    for session in await auth.sessions.for_account(principal.account_id):
        if session.id_hint == hint:
            await auth.sessions.revoke(session.id_hash)
            await request.app[AUDIT].record("session.revoked", actor=principal.account_id,
                                            target={"account": principal.account_id}, outcome="user_ended")
            return web.Response(status=204)
    raise NotFound("No such session.")


@routes.post("/api/reauth")
async def reauth(request: web.Request) -> web.Response:
    principal = await require_staff(request)
    factor, password = _second_factor(await _body(request), allow_password=True)
    if factor.recovery_code is not None:
        raise InvalidInput("Use your password or a code from your app.", code="invalid_input")
    auth = request.app[AUTH]
    account = await auth.accounts.require(principal.account_id)
    await auth.login.reauth(account, principal.session_id_hash, _address(request),
                            password=password, code=factor.code)
    return web.Response(status=204)


@routes.post("/api/account/password")
async def change_password(request: web.Request) -> web.Response:
    principal = await require_staff(request)
    data = await _body(request)
    auth = request.app[AUTH]
    account = await auth.accounts.require(principal.account_id)
    await auth.login.change_password(
        account, principal.session_id_hash, _address(request),
        current=str(_text(data, "current_password")), new=str(_text(data, "new_password")),
    )
    return web.Response(status=204)


@routes.post("/api/account/recovery-codes")
async def regenerate_recovery_codes(request: web.Request) -> web.Response:
    principal = await require_recent_auth(request)
    auth = request.app[AUTH]
    codes = await auth.login.regenerate_recovery_codes(await auth.accounts.require(principal.account_id))
    return web.json_response({"recovery_codes": codes})


# -- wiring -------------------------------------------------------------------------------------


def setup_auth(app: web.Application) -> None:
    """Add the auth routes and services. Call after the store's cleanup context is added."""

    async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        auth = AuthServices.build(app[STORE], app[CLOCK], settings, app[AUDIT])
        app[AUTH] = auth
        token = await auth.enrolment.issue_setup_link_if_needed()
        if token is not None:
            # The only place a token is shown: the operator's terminal, never the log.
            print(f"teleconsult: create the first administrator (link valid "
                  f"{settings.setup_token_ttl_s // 60} min, once): {auth.enrolment.link_url(token)}",
                  file=sys.stdout, flush=True)
            log.info("no account yet: printed a one-time setup link")
        yield

    app.cleanup_ctx.append(auth_ctx)
    app.router.add_routes(routes)
