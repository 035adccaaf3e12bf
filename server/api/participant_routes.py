"""Patients and guests (docs/api.md "Patients and guests"): redeem an invite, read the
participant session (on reload), leave. The session secret lives only in the
`tc_participant` cookie (HttpOnly, SameSite=Strict, Secure under TLS)."""

from __future__ import annotations

from aiohttp import web

from ..errors import InvalidInput
from ..rooms.models import Participant
from .consultation_routes import HUB, read_json
from .keys import SETTINGS
from .security import clear_private_cookie, set_private_cookie

PARTICIPANT_COOKIE = "tc_participant"
COOKIE_PATH = "/api/"

routes = web.RouteTableDef()


async def current_participant(request: web.Request) -> Participant:
    """The participant behind the cookie (Unauthenticated when none or ended)."""
    return await request.app[HUB].services.participants.authenticate(
        request.cookies.get(PARTICIPANT_COOKIE)
    )


@routes.post("/api/join")
async def join(request: web.Request) -> web.Response:
    body = await read_json(request)
    consultation_id = body.get("consultation_id")
    if consultation_id is not None and not isinstance(consultation_id, str):
        raise InvalidInput("consultation_id must be a string.", code="invalid_body")
    result = await request.app[HUB].services.participants.join(
        body.get("token"), body.get("display_name"), body.get("device_check"),
        consultation_id=consultation_id,
    )
    p = result.participant
    response = web.json_response(
        {"consultation_id": p.consultation_id, "participant_id": p.participant_id, "role": p.role.value},
        status=201,
    )
    set_private_cookie(response, PARTICIPANT_COOKIE, result.session_secret, request.app[SETTINGS],
                       path=COOKIE_PATH)
    return response


@routes.get("/api/participant")
async def participant(request: web.Request) -> web.Response:
    return web.json_response((await current_participant(request)).public())


@routes.post("/api/participant/leave")
async def leave(request: web.Request) -> web.Response:
    p = await current_participant(request)
    await request.app[HUB].leave(p)
    response = web.Response(status=204)
    clear_private_cookie(response, PARTICIPANT_COOKIE, request.app[SETTINGS], path=COOKIE_PATH)
    return response
