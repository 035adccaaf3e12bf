"""Passkeys, the sign-in policy and the password strength check over HTTP (docs/api.md,
"Passkeys", "Passwords"). Origin and CSRF are enforced on every write by the middleware.

Ceremonies come in pairs: `…/options` returns `{ceremony_id, options}` (options as WebAuthn
JSON for `PublicKeyCredential.parse…OptionsFromJSON`), the second call sends back
`{ceremony_id, credential}` (the credential's `toJSON()`).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..auth.accounts import Account
from ..auth.login import LoginResult
from ..auth.mfa_policy import passkey_required, passkeys_enabled, passwordless_enabled
from ..auth.passkey_records import Passkey
from ..auth.passkeys import REGISTER, Ceremony
from ..auth.password_policy import PasswordPolicy
from ..auth.services import AuthServices
from ..errors import Conflict, Forbidden
from .auth_context import StaffPrincipal, require_recent_auth, require_staff, session_token
from .auth_routes import ENROL_COOKIE, ENROL_COOKIE_TLS, set_session_cookie
from .bodies import NoBody, read_body
from .device_label import device_label
from .keys import AUTH, SETTINGS
from .passkey_schemas import (
    EnrolPasskeyFinish,
    EnrolPasskeyOptions,
    NewPasskeyBody,
    PasskeyAnswer,
    PasskeyName,
    PasswordCheck,
)
from .proxy import client_address
from .security import CSRF_COOKIE, clear_private_cookie

log = logging.getLogger("teleconsult.auth")
routes = web.RouteTableDef()


def _auth(request: web.Request) -> AuthServices:
    return request.app[AUTH]


def _ceremony(ceremony: Ceremony) -> web.Response:
    return web.json_response({"ceremony_id": ceremony.ceremony_id, "options": ceremony.options})


def _passkey_json(p: Passkey) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "created_at": p.created_at, "last_used_at": p.last_used_at,
            "transports": list(p.transports), "synced": p.backed_up}


def _signed_in(request: web.Request, result: LoginResult) -> web.Response:
    account = result.account
    notice = None if result.notice is None else {"code": result.notice.code, "at": result.notice.at}
    response = web.json_response({
        "account": {"id": account.id, "email": account.email, "display_name": account.display_name,
                    "role": account.role},
        "notice": notice,
    })
    set_session_cookie(response, result.token, request.app[SETTINGS])
    log.info("account %s signed in with a passkey", account.id)
    return response


def _address(request: web.Request) -> str:
    return client_address(request)


async def _account_of(request: web.Request, principal: StaffPrincipal) -> tuple[AuthServices, Account]:
    """The auth services and the signed-in staff member's account."""
    auth = _auth(request)
    return auth, await auth.accounts.require(principal.account_id)


# -- the signed-in person's passkeys ----------------------------------------------------------------


@routes.get("/api/passkeys")
async def list_passkeys(request: web.Request) -> web.Response:
    principal = await require_staff(request, allow_passkey_setup=True)
    passkeys = await _auth(request).passkeys.records.for_account(principal.account_id)
    return web.json_response([_passkey_json(p) for p in passkeys])


@routes.post("/api/passkeys/register/options")
async def register_options(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal = await require_recent_auth(request, allow_passkey_setup=True)
    auth = _auth(request)
    if not passkeys_enabled(auth.settings):
        raise Forbidden("Passkeys are not enabled here.", code="passkeys_disabled")
    return _ceremony(await auth.passkeys.registration_options(
        purpose=REGISTER, bound_to=principal.session_id_hash, account_id=principal.account_id,
        user_name=principal.email, display_name=principal.display_name))


@routes.post("/api/passkeys/register")
async def register(request: web.Request) -> web.Response:
    body = await read_body(request, NewPasskeyBody)
    principal = await require_recent_auth(request, allow_passkey_setup=True)
    passkeys = _auth(request).passkeys
    new = await passkeys.verify_registration(body.ceremony_id, body.credential, purpose=REGISTER,
                                             bound_to=principal.session_id_hash, name=body.name)
    passkey = await passkeys.add(new, actor=principal.account_id)
    return web.json_response(_passkey_json(passkey), status=201)


@routes.patch("/api/passkeys/{passkey_id}")
async def rename_passkey(request: web.Request) -> web.Response:
    body = await read_body(request, PasskeyName)
    principal = await require_recent_auth(request, allow_passkey_setup=True)
    passkey = await _auth(request).passkeys.rename(principal.account_id, request.match_info["passkey_id"],
                                                   body.name, actor=principal.account_id)
    return web.json_response(_passkey_json(passkey))


@routes.delete("/api/passkeys/{passkey_id}")
async def remove_passkey(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal = await require_recent_auth(request, allow_passkey_setup=True)
    auth, account = await _account_of(request, principal)
    passkey = await auth.passkeys.records.owned(principal.account_id, request.match_info["passkey_id"])
    others = [p for p in await auth.passkeys.records.for_account(account.id) if p.id != passkey.id]
    if not others and (account.totp_sealed is None or passkey_required(auth.settings, account.role)):
        raise Conflict("This is your last way to sign in; add another passkey first.", code="last_factor")
    await auth.passkeys.remove(principal.account_id, passkey.id, actor=principal.account_id)
    return web.Response(status=204)


# -- signing in with a passkey ------------------------------------------------------------------------


@routes.get("/api/sign-in-policy")
async def sign_in_policy(request: web.Request) -> web.Response:
    """What the login page offers (no account needed: the clinic's settings only)."""
    settings = request.app[SETTINGS]
    return web.json_response({
        "passkeys": passkeys_enabled(settings), "passwordless": passwordless_enabled(settings),
        "shared_computer_idle_s": settings.shared_computer_idle_s,
        "password_min_length": settings.password_min_length,
    })



@routes.post("/api/login/passkey/options")
async def second_factor_options(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    return _ceremony(await _auth(request).passkey_login.second_factor_options(session_token(request) or ""))


@routes.post("/api/login/passkey")
async def second_factor(request: web.Request) -> web.Response:
    body = await read_body(request, PasskeyAnswer)
    result = await _auth(request).passkey_login.second_factor_finish(
        session_token(request) or "", _address(request), body.ceremony_id, body.credential)
    return _signed_in(request, result)


@routes.post("/api/passkeys/login/options")
async def passwordless_options(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    # bound to this browser's CSRF cookie (present: the middleware checked it)
    return _ceremony(await _auth(request).passkey_login.passwordless_options(request.cookies[CSRF_COOKIE]))


@routes.post("/api/passkeys/login")
async def passwordless(request: web.Request) -> web.Response:
    body = await read_body(request, PasskeyAnswer)
    result = await _auth(request).passkey_login.passwordless_finish(
        request.cookies[CSRF_COOKIE], _address(request), body.ceremony_id, body.credential,
        device=device_label(request.headers.get("User-Agent")), shared=body.shared_computer)
    return _signed_in(request, result)


@routes.post("/api/reauth/passkey/options")
async def reauth_options(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal = await require_staff(request, allow_passkey_setup=True)
    auth, account = await _account_of(request, principal)
    return _ceremony(await auth.passkey_login.reauth_options(account, principal.session_id_hash))


@routes.post("/api/reauth/passkey")
async def reauth(request: web.Request) -> web.Response:
    body = await read_body(request, PasskeyAnswer)
    principal = await require_staff(request, allow_passkey_setup=True)
    auth, account = await _account_of(request, principal)
    await auth.passkey_login.reauth_finish(account, principal.session_id_hash, _address(request),
                                           body.ceremony_id, body.credential)
    return web.Response(status=204)


# -- enrolment with a passkey instead of TOTP ---------------------------------------------------------


def _enrol_binding(request: web.Request) -> str:
    name = ENROL_COOKIE_TLS if request.app[SETTINGS].tls_enabled else ENROL_COOKIE
    return request.cookies.get(name, "")


@routes.post("/api/enrol/passkey/options")
async def enrol_options(request: web.Request) -> web.Response:
    body = await read_body(request, EnrolPasskeyOptions)
    return _ceremony(await _auth(request).enrolment.passkey_options(
        body.enrolment_id, _enrol_binding(request), email=body.email, display_name=body.display_name))


@routes.post("/api/enrol/passkey/finish")
async def enrol_finish(request: web.Request) -> web.Response:
    body = await read_body(request, EnrolPasskeyFinish)
    result = await _auth(request).enrolment.finish_with_passkey(
        body.enrolment_id, _enrol_binding(request), password=body.password, ceremony_id=body.ceremony_id,
        credential=body.credential, name=body.name, email=body.email, display_name=body.display_name)
    log.info("account %s enrolled with a passkey", result.account.id)
    response = web.json_response({"recovery_codes": result.recovery_codes})
    settings = request.app[SETTINGS]
    clear_private_cookie(response, ENROL_COOKIE_TLS if settings.tls_enabled else ENROL_COOKIE, settings)
    return response


# -- the strength meter ---------------------------------------------------------------------------------


@routes.post("/api/password/check")
async def password_check(request: web.Request) -> web.Response:
    """The meter's verdict while typing (same policy as the real change). A signed-in person's
    own e-mail and name count; otherwise those the page sends (first-run setup)."""
    body = await read_body(request, PasswordCheck)
    email, name = body.email, body.display_name
    token = session_token(request)
    current = await _auth(request).current_staff(token) if token else None
    if current is not None:
        email, name = current[0].email, current[0].display_name
    min_length = request.app[SETTINGS].password_min_length
    verdict = PasswordPolicy(min_length).assess(body.password, email=email, display_name=name)
    return web.json_response({"ok": verdict.ok, "code": verdict.code, "score": verdict.score,
                              "min_length": min_length})
