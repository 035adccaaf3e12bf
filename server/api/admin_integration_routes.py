"""The admin page's API for integrations (docs/api.md "Administration", docs/integrations.md).

What `teleconsult integrations …` does, for the admin page: list integrations (never a key or a
secret), create one (its API key answered once), revoke it (at once), register its webhook (the
signing secret answered once, on the first registration) and rotate the signing secret. The same
rules as every admin write (admin_routes.py): the admin role, a recent re-authentication,
Origin and CSRF by the middleware, audited by the registry with the admin's account id.

- `GET /api/admin/integrations` — every integration's public view;
- `POST /api/admin/integrations` `{name, scopes, expires_in_days?}` — 201 `{integration, api_key}`;
- `POST /api/admin/integrations/{iid}/revoke`;
- `POST /api/admin/integrations/{iid}/webhook` `{url, events}` — `{integration, secret}` (`secret`
  null after the first registration);
- `POST /api/admin/integrations/{iid}/rotate-secret` — `{integration, secret, previous_valid_until}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import InvalidInput
from ..integrations.models import Integration
from ..integrations.registry import IntegrationRegistry
from .admin_routes import ADMIN
from .auth_context import StaffPrincipal, require_recent_auth, require_staff
from .bodies import JSONObject, NoBody, optional_int, read_body, text
from .keys import CLOCK, INTEGRATIONS

DAY_S = 86400
EXPIRY_DAYS_MAX = 3650
LIST_MAX = 16  # more than there are scopes or event types
routes = web.RouteTableDef()


def _strings(data: JSONObject, name: str) -> tuple[str, ...]:
    value = data.get(name)
    if not isinstance(value, list) or not 1 <= len(value) <= LIST_MAX or not all(
            isinstance(v, str) for v in value):
        raise InvalidInput(f"The field {name!r} must be a list of names.", code=f"invalid_{name}")
    return tuple(value)


@dataclass(frozen=True)
class NewIntegration:
    name: str
    scopes: tuple[str, ...]
    expires_in_days: int | None

    @classmethod
    def from_json(cls, data: JSONObject) -> NewIntegration:
        days = optional_int(data, "expires_in_days", code="invalid_expiry",
                            message=f"expires_in_days must be a whole number from 1 to {EXPIRY_DAYS_MAX}.")
        if days is not None and not 1 <= days <= EXPIRY_DAYS_MAX:
            raise InvalidInput(f"expires_in_days must be a whole number from 1 to {EXPIRY_DAYS_MAX}.",
                               code="invalid_expiry")
        return cls(name=text(data, "name"), scopes=_strings(data, "scopes"), expires_in_days=days)


@dataclass(frozen=True)
class WebhookBody:
    url: str
    events: tuple[str, ...]

    @classmethod
    def from_json(cls, data: JSONObject) -> WebhookBody:
        return cls(url=text(data, "url"), events=_strings(data, "events"))


def _view(request: web.Request, integration: Integration) -> dict[str, Any]:
    return integration.public(request.app[CLOCK].now())


async def _admin_write(request: web.Request) -> tuple[StaffPrincipal, IntegrationRegistry]:
    await require_staff(request, role=ADMIN)
    return await require_recent_auth(request), request.app[INTEGRATIONS].registry


@routes.get("/api/admin/integrations")
async def list_integrations(request: web.Request) -> web.Response:
    await require_staff(request, role=ADMIN)
    found = await request.app[INTEGRATIONS].registry.list_all()
    return web.json_response([_view(request, i) for i in found])


@routes.post("/api/admin/integrations")
async def create_integration(request: web.Request) -> web.Response:
    body = await read_body(request, NewIntegration)
    principal, registry = await _admin_write(request)
    expires = None if body.expires_in_days is None else float(body.expires_in_days * DAY_S)
    issued = await registry.create(name=body.name, scopes=body.scopes, expires_in_s=expires,
                                   actor=principal.account_id)
    return web.json_response({"integration": _view(request, issued.integration),
                              "api_key": issued.api_key}, status=201)


@routes.post("/api/admin/integrations/{iid}/revoke")
async def revoke_integration(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal, registry = await _admin_write(request)
    revoked = await registry.revoke(request.match_info["iid"], actor=principal.account_id)
    return web.json_response({"integration": _view(request, revoked)})


@routes.post("/api/admin/integrations/{iid}/webhook")
async def set_integration_webhook(request: web.Request) -> web.Response:
    body = await read_body(request, WebhookBody)
    principal, registry = await _admin_write(request)
    iid = request.match_info["iid"]
    issued = await registry.set_webhook(iid, url=body.url, events=body.events, actor=principal.account_id)
    return web.json_response({"integration": _view(request, await registry.get(iid)),
                              "secret": None if issued is None else issued.secret})


@routes.post("/api/admin/integrations/{iid}/rotate-secret")
async def rotate_integration_secret(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    principal, registry = await _admin_write(request)
    iid = request.match_info["iid"]
    issued = await registry.rotate_secret(iid, actor=principal.account_id)
    return web.json_response({"integration": _view(request, await registry.get(iid)),
                              "secret": issued.secret,
                              "previous_valid_until": issued.previous_valid_until})
