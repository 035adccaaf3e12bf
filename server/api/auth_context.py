"""Who is calling: the staff principal behind a request's session cookie.

Other features call these:

    principal = await require_staff(request)                 # any enrolled, active staff member
    principal = await require_staff(request, role="admin")   # that role exactly (admins are not doctors)
    principal = await require_recent_auth(request)           # and re-authenticated within
                                                             # Settings.reauth_window_s (exports)

`allow_passkey_setup=True` lets a session the policy holds until it registers a passkey
through (the account page, passkey registration, /api/me); elsewhere such a session gets
Forbidden with code "passkey_required".

They raise Unauthenticated (401) when there is no valid authenticated session (missing,
unknown, expired, logged out, pre-MFA, or the account was disabled since), Forbidden (403) on
a role mismatch, and Forbidden with code "reauth_required" when a recent re-authentication
(POST /api/reauth) is needed. The principal is cached on the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..config import Settings
from ..errors import Forbidden, Unauthenticated
from .keys import AUTH, SETTINGS

SESSION_COOKIE = "tc_session"
SESSION_COOKIE_TLS = "__Host-tc_session"


@dataclass(frozen=True)
class StaffPrincipal:
    account_id: str
    role: str
    session_id_hash: str
    email: str
    display_name: str
    passkey_setup_required: bool = False  # the policy holds this session until a passkey exists


_PRINCIPAL = web.RequestKey("staff_principal", StaffPrincipal)


def session_cookie_name(settings: Settings) -> str:
    return SESSION_COOKIE_TLS if settings.tls_enabled else SESSION_COOKIE


def session_token(request: web.Request) -> str | None:
    return request.cookies.get(session_cookie_name(request.app[SETTINGS])) or None


async def require_staff(
    request: web.Request, *, role: str | None = None, allow_passkey_setup: bool = False,
) -> StaffPrincipal:
    principal = request.get(_PRINCIPAL)
    if principal is None:
        token = session_token(request)
        if token is None:
            raise Unauthenticated("Please sign in.")
        current = await request.app[AUTH].current_staff(token)
        if current is None:
            raise Unauthenticated("Your session has ended; please sign in again.")
        account, session = current
        principal = StaffPrincipal(
            account_id=account.id,
            role=account.role,
            session_id_hash=session.id_hash,
            email=account.email,
            display_name=account.display_name,
            passkey_setup_required=await request.app[AUTH].passkey_setup_required(account),
        )
        request[_PRINCIPAL] = principal
    if principal.passkey_setup_required and not allow_passkey_setup:
        raise Forbidden("Register a passkey first (clinic policy).", code="passkey_required")
    if role is not None and principal.role != role:
        raise Forbidden("Your role does not allow this.")
    return principal


async def require_recent_auth(request: web.Request, *, allow_passkey_setup: bool = False) -> StaffPrincipal:
    principal = await require_staff(request, allow_passkey_setup=allow_passkey_setup)
    if not await request.app[AUTH].sessions.recently_authenticated(principal.session_id_hash):
        raise Forbidden("Please confirm your password or code first.", code="reauth_required")
    return principal
