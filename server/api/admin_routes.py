"""The admin page's API (docs/api.md "Administration"): staff accounts and the audit log.

Every route needs a staff session with the admin role (403 otherwise); Origin and CSRF are
enforced on writes by the middleware. Every write also needs a recent re-authentication
(`Settings.reauth_window_s`, POST /api/reauth) and is audited by the auth services with the
admin's account id as actor. An admin cannot disable, demote or reset their own account (so
the clinic is never left without one by a slip). Enrolment links in answers are built from the
server's own address (`Settings.base_url`); they are shown once and never logged.

- `GET /api/admin/staff` — every account: id, e-mail, name, role, state;
- `POST /api/admin/staff` `{email, role, display_name?}` — 201 with the account and its link;
- `POST /api/admin/staff/{aid}/disable|enable|reset-mfa` — reset-mfa answers a re-enrolment link;
- `POST /api/admin/staff/{aid}/role` `{role}`;
- `GET /api/admin/audit?limit=N` — the last N entries (ids only, never names), newest first;
- `GET /api/admin/audit/verify` — the whole chain recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..auth.accounts import Account
from ..auth.services import AuthServices
from ..errors import Conflict, InvalidInput
from .auth_context import StaffPrincipal, require_recent_auth, require_staff
from .bodies import NoBody, TextBody, read_body
from .keys import AUDIT, AUTH, SETTINGS

ADMIN = "admin"
AUDIT_DEFAULT, AUDIT_MAX = 100, 1000
routes = web.RouteTableDef()


@dataclass(frozen=True)
class NewStaff(TextBody):
    email: str
    role: str
    display_name: str | None


@dataclass(frozen=True)
class RoleChange(TextBody):
    role: str


def account_state(a: Account) -> str:
    return "disabled" if a.disabled else "locked" if a.locked else "active" if a.active else "pending"


def _public(a: Account) -> dict[str, Any]:
    return {"id": a.id, "email": a.email, "display_name": a.display_name, "role": a.role,
            "state": account_state(a), "created_at": a.created_at}


async def _admin_act(request: web.Request) -> StaffPrincipal:
    """An admin with a recent re-authentication, acting on an account not their own."""
    await require_staff(request, role=ADMIN)
    principal = await require_recent_auth(request)
    if request.match_info.get("aid") == principal.account_id:
        raise Conflict("You cannot do this to your own account.", code="own_account")
    return principal


async def _admin_target(request: web.Request) -> tuple[StaffPrincipal, AuthServices, str]:
    """`_admin_act`, the auth service, and the id of the existing account `{aid}`."""
    principal = await _admin_act(request)
    auth = request.app[AUTH]
    return principal, auth, (await auth.accounts.require(request.match_info["aid"])).id


@routes.get("/api/admin/staff")
async def list_staff(request: web.Request) -> web.Response:
    await require_staff(request, role=ADMIN)
    return web.json_response([_public(a) for a in await request.app[AUTH].accounts.list()])


@routes.post("/api/admin/staff")
async def create_staff(request: web.Request) -> web.Response:
    body = await read_body(request, NewStaff)
    principal = await _admin_act(request)
    auth = request.app[AUTH]
    name = body.display_name or body.email.split("@", 1)[0]
    account, token = await auth.add_user(email=body.email, role=body.role, display_name=name,
                                         actor=principal.account_id)
    hours = request.app[SETTINGS].enrol_token_ttl_s // 3600
    return web.json_response({"account": _public(account), "link": auth.enrolment.link_url(token),
                              "valid_hours": hours}, status=201)


@routes.post("/api/admin/staff/{aid}/disable")
async def disable_staff(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal, auth, aid = await _admin_target(request)
    ended = await auth.disable(aid, actor=principal.account_id)
    return web.json_response({"account": _public(await auth.accounts.require(aid)), "sessions_ended": ended})


@routes.post("/api/admin/staff/{aid}/enable")
async def enable_staff(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal, auth, aid = await _admin_target(request)
    await auth.enable(aid, actor=principal.account_id)
    return web.json_response({"account": _public(await auth.accounts.require(aid))})


@routes.post("/api/admin/staff/{aid}/reset-mfa")
async def reset_staff_mfa(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal, auth, aid = await _admin_target(request)
    token = await auth.reset_mfa(aid, actor=principal.account_id)
    hours = request.app[SETTINGS].enrol_token_ttl_s // 3600
    return web.json_response({"account": _public(await auth.accounts.require(aid)),
                              "link": auth.enrolment.link_url(token), "valid_hours": hours})


@routes.post("/api/admin/staff/{aid}/role")
async def change_staff_role(request: web.Request) -> web.Response:
    body = await read_body(request, RoleChange)
    principal, auth, aid = await _admin_target(request)
    account = await auth.change_role(aid, body.role, actor=principal.account_id)
    return web.json_response({"account": _public(account)})


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(AUDIT_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= AUDIT_MAX:
        raise InvalidInput(f"limit must be a whole number from 1 to {AUDIT_MAX}.", code="invalid_limit")
    return int(raw)


@routes.get("/api/admin/audit")
async def audit_entries(request: web.Request) -> web.Response:
    principal = await require_staff(request, role=ADMIN)
    entries = await request.app[AUDIT].latest(_limit(request))
    await request.app[AUDIT].record("audit.viewed", actor=principal.account_id)
    return web.json_response(entries)


@routes.get("/api/admin/audit/verify")
async def audit_verify(request: web.Request) -> web.Response:
    principal = await require_staff(request, role=ADMIN)
    result = await request.app[AUDIT].verify()
    await request.app[AUDIT].record("audit.verified", actor=principal.account_id,
                                    outcome="ok" if result.ok else "broken")
    return web.json_response({"ok": result.ok, "count": result.count,
                              "first_bad_seq": result.first_bad_seq, "reason": result.reason})
