"""Staff authentication over HTTP (docs/api.md, "Staff authentication").

Origin and CSRF are already enforced on every non-GET /api/ request by the middleware; bodies
are parsed by bodies.read_body into request_schemas dataclasses.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..auth.accounts import Account
from ..auth.mfa_policy import passkeys_enabled, second_factors
from ..auth.sessions import Session
from ..config import Settings
from ..errors import NotFound, Unauthenticated
from .auth_context import require_recent_auth, require_staff, session_cookie_name, session_token
from .bodies import NoBody, read_body
from .device_label import device_label
from .keys import AUDIT, AUTH, SETTINGS
from .proxy import client_address
from .request_schemas import Credentials, EnrolFinish, EnrolStart, PasswordChange, Reauth, SecondFactor
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
CLEAR_SITE_DATA = '"cache", "storage"'  # a shared-computer session leaves nothing behind


# -- cookies ------------------------------------------------------------------------------------


def _enrol_cookie_name(settings: Settings) -> str:
    return ENROL_COOKIE_TLS if settings.tls_enabled else ENROL_COOKIE


def set_session_cookie(response: web.StreamResponse, token: str, settings: Settings) -> None:
    set_private_cookie(response, session_cookie_name(settings), token, settings)


def clear_session_cookie(response: web.StreamResponse, settings: Settings) -> None:
    clear_private_cookie(response, session_cookie_name(settings), settings)


def _address(request: web.Request) -> str:
    return client_address(request)  # X-Forwarded-For only from TELECONSULT_TRUSTED_PROXIES


def _account_json(account: Account) -> dict[str, str]:
    return {"id": account.id, "email": account.email, "display_name": account.display_name,
            "role": account.role}


# -- enrolment ----------------------------------------------------------------------------------


@routes.post("/api/enrol/start")
async def enrol_start(request: web.Request) -> web.Response:
    body = await read_body(request, EnrolStart)
    started = await request.app[AUTH].enrolment.start(body.token)
    response = web.json_response({
        "enrolment_id": started.enrolment_id, "email": started.email,
        "needs_identity": started.email is None, "totp_secret": started.totp_secret,
        "totp_uri": started.totp_uri, "qr_svg": started.qr_svg, "reset_at": started.reset_at,
        "passkeys_enabled": passkeys_enabled(request.app[SETTINGS]),
    })
    settings = request.app[SETTINGS]
    set_private_cookie(response, _enrol_cookie_name(settings), started.binding, settings, max_age=30 * 60)
    return response


@routes.post("/api/enrol/finish")
async def enrol_finish(request: web.Request) -> web.Response:
    body = await read_body(request, EnrolFinish)
    settings = request.app[SETTINGS]
    result = await request.app[AUTH].enrolment.finish(
        body.enrolment_id,
        request.cookies.get(_enrol_cookie_name(settings), ""),
        password=body.password, code=body.code, email=body.email, display_name=body.display_name,
    )
    log.info("account %s enrolled", result.account.id)
    response = web.json_response({"recovery_codes": result.recovery_codes})
    clear_private_cookie(response, _enrol_cookie_name(settings), settings)
    return response


# -- login / logout -----------------------------------------------------------------------------


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    creds = await read_body(request, Credentials)
    auth = request.app[AUTH]
    result = await auth.login.password_step(
        creds.email, creds.password, _address(request),
        device=device_label(request.headers.get("User-Agent")), shared=creds.shared_computer,
    )
    has_passkey = bool(await auth.passkeys.records.for_account(result.account.id))
    notice = await auth.notices.get(result.account.id)
    response = web.json_response({
        "mfa_required": True,
        "factors": second_factors(request.app[SETTINGS], has_passkey=has_passkey,
                                  has_totp=result.account.totp_sealed is not None),
        "notice": None if notice is None else {"code": notice.code, "at": notice.at},
    })
    set_session_cookie(response, result.token, request.app[SETTINGS])
    return response


@routes.post("/api/login/mfa")
async def login_mfa(request: web.Request) -> web.Response:
    factor = await read_body(request, SecondFactor)
    result = await request.app[AUTH].login.mfa_step(
        session_token(request) or "", _address(request), code=factor.code, recovery_code=factor.recovery_code,
    )
    log.info("account %s signed in", result.account.id)
    notice = None if result.notice is None else {"code": result.notice.code, "at": result.notice.at}
    response = web.json_response({"account": _account_json(result.account), "notice": notice})
    set_session_cookie(response, result.token, request.app[SETTINGS])
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    auth = request.app[AUTH]
    token = session_token(request)
    session = await auth.sessions.get(token, touch=False) if token is not None else None
    if session is not None and await auth.sessions.revoke(session.id_hash):
        await request.app[AUDIT].record("session.revoked", actor=session.account_id,
                                        target={"account": session.account_id}, outcome="logout")
    response = web.Response(status=204)
    if session is not None and session.shared:  # "shared computer": leave nothing behind
        response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    clear_session_cookie(response, request.app[SETTINGS])
    return response


# -- the signed-in user -------------------------------------------------------------------------


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    principal = await require_staff(request, allow_passkey_setup=True)
    sessions = request.app[AUTH].sessions
    session = await sessions.get_by_hash(principal.session_id_hash, touch=False)
    if session is None:
        raise Unauthenticated("Your session has ended; please sign in again.")
    settings = request.app[SETTINGS]
    csrf = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    response = web.json_response({
        "id": principal.account_id, "email": principal.email, "display_name": principal.display_name,
        "role": principal.role, "csrf_token": csrf, "idle_timeout_s": int(sessions.idle_limit(session)),
        "session_expires_at": session.expires_at, "shared_computer": session.shared,
        "passkey_setup_required": principal.passkey_setup_required,
        "passkeys_enabled": passkeys_enabled(settings),
    })
    set_csrf_cookie(response, csrf, settings)
    return response


def _session_json(session: Session, current_hash: str) -> dict[str, Any]:
    return {"id_hint": session.id_hint, "created_at": session.created_at, "last_seen": session.last_seen,
            "current": session.id_hash == current_hash, "device": session.device or "Browser",
            "shared_computer": session.shared}


@routes.get("/api/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    principal = await require_staff(request, allow_passkey_setup=True)
    sessions = await request.app[AUTH].sessions.for_account(principal.account_id)
    return web.json_response([_session_json(s, principal.session_id_hash) for s in sessions
                              if s.stage == "auth"])


@routes.delete("/api/sessions/{id_hint}")
async def end_session(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal = await require_staff(request, allow_passkey_setup=True)
    hint = request.match_info["id_hint"]
    auth = request.app[AUTH]
    for session in await auth.sessions.for_account(principal.account_id):
        if session.id_hint == hint:
            await auth.sessions.revoke(session.id_hash)
            await request.app[AUDIT].record("session.revoked", actor=principal.account_id,
                                            target={"account": principal.account_id}, outcome="user_ended")
            return web.Response(status=204)
    raise NotFound("No such session.")


@routes.delete("/api/sessions")
async def end_all_sessions(request: web.Request) -> web.Response:
    """Sign out everywhere: every session of this account ends, this one included."""
    await read_body(request, NoBody)
    principal = await require_staff(request, allow_passkey_setup=True)
    sessions = request.app[AUTH].sessions
    current = await sessions.get_by_hash(principal.session_id_hash, touch=False)
    ended = await sessions.revoke_all(principal.account_id)
    await request.app[AUDIT].record("session.revoked", actor=principal.account_id,
                                    target={"account": principal.account_id}, outcome="signed_out_everywhere")
    log.info("account %s signed out everywhere (%d sessions)", principal.account_id, ended)
    response = web.Response(status=204)
    if current is not None and current.shared:
        response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    clear_session_cookie(response, request.app[SETTINGS])
    return response


@routes.post("/api/reauth")
async def reauth(request: web.Request) -> web.Response:
    body = await read_body(request, Reauth)
    principal = await require_staff(request, allow_passkey_setup=True)
    auth = request.app[AUTH]
    account = await auth.accounts.require(principal.account_id)
    await auth.login.reauth(account, principal.session_id_hash, _address(request),
                            password=body.password, code=body.code)
    return web.Response(status=204)


@routes.post("/api/account/password")
async def change_password(request: web.Request) -> web.Response:
    body = await read_body(request, PasswordChange)
    principal = await require_staff(request)
    auth = request.app[AUTH]
    account = await auth.accounts.require(principal.account_id)
    await auth.login.change_password(
        account, principal.session_id_hash, _address(request),
        current=body.current_password, new=body.new_password,
    )
    return web.Response(status=204)


@routes.post("/api/account/recovery-codes")
async def regenerate_recovery_codes(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal = await require_recent_auth(request)
    auth = request.app[AUTH]
    codes = await auth.login.regenerate_recovery_codes(await auth.accounts.require(principal.account_id))
    return web.json_response({"recovery_codes": codes})
