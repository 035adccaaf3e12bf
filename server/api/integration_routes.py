"""REST for booking and patient-record systems (docs/integrations.md, docs/openapi.json).

Everything under INTEGRATION_PREFIX is authenticated by `Authorization: Bearer <API key>`
only — never by a cookie — so these routes, and only these, skip the Origin and CSRF checks
(security.is_bearer_route). A bearer key presented anywhere else under /api/ is refused with
403 (middleware), so no scope ever reaches recordings, accounts or the audit log.

Per call: the key is authenticated (401 unknown/revoked/expired), rate-limited (429), its
scope checked (403), and the consultation must be one this integration created (403 for any
other id, known or not). Every call is audited with the key's id. Bodies go through the one
parser (bodies.read_body) before the key is checked, like every other route. The services (and
the webhook worker) are built by the composition root, services.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..consultations.models import Consultation, StaffActor
from ..errors import Forbidden, InvalidInput, NotFound
from ..integrations.models import Integration, Scope
from .bodies import JSONObject, optional_str, read_body
from .keys import AUDIT, AUTH, HUB, INTEGRATIONS
from .request_schemas import NewConsultation
from .security import INTEGRATION_PREFIX

INTEGRATION_ROLE = "integration"  # the StaffActor role of a key: no rights in the consultations layer
EMAIL_MAX = 254
ID_MAX = 64

routes = web.RouteTableDef()


# -- request bodies (frozen, validated at the boundary) -------------------------------------


@dataclass(frozen=True)
class CreateConsultationBody:
    """The doctor (by id or e-mail, exactly one) and the dashboard's consultation fields."""

    doctor_id: str | None
    doctor_email: str | None
    consultation: NewConsultation  # label, scheduled_at, max_participants

    @classmethod
    def from_json(cls, data: JSONObject) -> CreateConsultationBody:
        doctor_id, email = data.get("doctor_id"), data.get("doctor_email")
        if (doctor_id is None) == (email is None):
            raise InvalidInput("Give the doctor as doctor_id or doctor_email (one of them).",
                               code="invalid_doctor")
        for value, limit in ((doctor_id, ID_MAX), (email, EMAIL_MAX)):
            if value is not None and (not isinstance(value, str) or not value or len(value) > limit):
                raise InvalidInput("doctor_id / doctor_email must be a short string.",
                                   code="invalid_doctor")
        return cls(doctor_id=doctor_id, doctor_email=email, consultation=NewConsultation.from_json(data))


@dataclass(frozen=True)
class CreateInviteBody:
    role: str  # "patient" when absent; the invite service checks the value

    @classmethod
    def from_json(cls, data: JSONObject) -> CreateInviteBody:
        role = optional_str(data, "role", code="invalid_role", message='role must be "patient" or "guest".')
        return cls(role="patient" if role is None else role)


# -- helpers ---------------------------------------------------------------------------------


async def _caller(request: web.Request, scope: Scope) -> Integration:
    """Authenticate the bearer key, count the call against its rate, check the scope."""
    registry = request.app[INTEGRATIONS].registry
    integration = await registry.authenticate(request.headers.get("Authorization"))
    await registry.check_rate(integration)
    await registry.require_scope(integration, scope)
    return integration


def _key_actor(integration: Integration) -> StaffActor:
    return StaffActor(account_id=integration.id, role=INTEGRATION_ROLE)


async def _own_consultation(request: web.Request, integration: Integration) -> Consultation:
    """The consultation in the path if this integration created it; 403 for any other id."""
    cid = request.match_info["cid"]
    try:
        consultation = await request.app[HUB].services.consultations.get(cid)
    except NotFound:
        consultation = None
    if consultation is None or consultation.integration_id != integration.id:
        await request.app[AUDIT].record("integration.call", actor=integration.id,
                                        outcome="not_own_consultation")
        raise Forbidden("This consultation was not created with this API key.",
                        code="not_own_consultation")
    return consultation


def _consultation_view(c: Consultation) -> dict[str, Any]:
    return {
        "id": c.id, "state": c.state.value, "doctor_id": c.host_id, "label": c.label,
        "scheduled_at": c.scheduled_at, "created_at": c.created_at, "opened_at": c.opened_at,
        "ended_at": c.ended_at, "max_participants": c.max_participants,
    }


# -- routes ------------------------------------------------------------------------------------


@routes.post(INTEGRATION_PREFIX + "consultations")
async def create_consultation(request: web.Request) -> web.Response:
    body = await read_body(request, CreateConsultationBody)
    integration = await _caller(request, Scope.CONSULTATIONS_CREATE)
    accounts = request.app[AUTH].accounts
    if body.doctor_id is not None:
        doctor = await accounts.get(body.doctor_id)
    else:
        doctor = await accounts.find_by_email(str(body.doctor_email))
    if doctor is None or doctor.role != "doctor" or doctor.disabled:
        raise InvalidInput("No active doctor with this id or e-mail.", code="unknown_doctor")
    consultation = await request.app[HUB].services.consultations.create(
        StaffActor(account_id=doctor.id, role="doctor"), label=body.consultation.label,
        scheduled_at=body.consultation.scheduled_at, max_participants=body.consultation.max_participants,
        integration_id=integration.id,
    )
    return web.json_response(_consultation_view(consultation), status=201)


@routes.get(INTEGRATION_PREFIX + "consultations/{cid}")
async def get_consultation(request: web.Request) -> web.Response:
    integration = await _caller(request, Scope.CONSULTATIONS_READ)
    consultation = await _own_consultation(request, integration)
    await request.app[AUDIT].record("integration.consultation_read", actor=integration.id,
                                    target=consultation.id, consultation_id=consultation.id)
    return web.json_response(_consultation_view(consultation))


@routes.post(INTEGRATION_PREFIX + "consultations/{cid}/invites")
async def create_invite(request: web.Request) -> web.Response:
    body = await read_body(request, CreateInviteBody)
    integration = await _caller(request, Scope.INVITES_CREATE)
    consultation = await _own_consultation(request, integration)
    issued = await request.app[HUB].services.invites.issue(consultation, body.role, _key_actor(integration))
    return web.json_response({
        "invite_id": issued.invite.invite_id, "role": issued.invite.role.value,
        "link": issued.link, "expires_at": issued.invite.expires_at,
        # The link carries no end-to-end-encryption link secret (the server never sees one):
        # the key exchange is "unverified" and the participants compare the safety code.
        "e2ee_link_secret": False,
    }, status=201)
