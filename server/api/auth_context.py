"""Who is calling: the staff principal behind a request's session cookie.

Other features call these:

    principal = await require_staff(request)                 # any enrolled, active staff member
    principal = await require_staff(request, role="admin")   # that role exactly (admins are not doctors)
    principal = await require_recent_auth(request)           # and re-authenticated within
                                                             # Settings.reauth_window_s (exports)

They raise Unauthenticated (401) when there is no valid authenticated session (missing,
unknown, expired, logged out, pre-MFA, or the account was disabled since), Forbidden (403) on
a role mismatch, and Forbidden with code "reauth_required" when a recent re-authentication
(POST /api/reauth) is needed. The principal is cached on the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..auth.services import AuthServices
from ..config import Settings
from ..errors import Forbidden, Unauthenticated

AUTH = web.AppKey("auth", AuthServices)

SESSION_COOKIE = "tc_session"
SESSION_COOKIE_TLS = "__Host-tc_session"


@dataclass(frozen=True)
class StaffPrincipal:
    account_id: str
    role: str
    session_id_hash: str
    email: str
    display_name: str


_PRINCIPAL = web.RequestKey("staff_principal", StaffPrincipal)


def session_cookie_name(settings: Settings) -> str:
    return SESSION_COOKIE_TLS if settings.tls_enabled else SESSION_COOKIE


def session_token(request: web.Request) -> str | None:
    from .keys import SETTINGS

    return request.cookies.get(session_cookie_name(request.app[SETTINGS])) or None


async def require_staff(request: web.Request, *, role: str | None = None) -> StaffPrincipal:
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
        )
        request[_PRINCIPAL] = principal
    if role is not None and principal.role != role:
        raise Forbidden("Your role does not allow this.")
    return principal


async def require_recent_auth(request: web.Request) -> StaffPrincipal:
    principal = await require_staff(request)
    if not await request.app[AUTH].sessions.recently_authenticated(principal.session_id_hash):
        raise Forbidden("Please confirm your password or code first.", code="reauth_required")
    return principal
