"""Patients and guests (docs/api.md "Patients and guests"): redeem an invite, read the
participant session (on reload), leave. The session secret lives only in the
`tc_participant` cookie (HttpOnly, SameSite=Strict, Secure under TLS)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..auth.throttle import address_key
from ..consultations.models import Participant
from ..errors import RateLimited
from .bodies import NoBody, read_body
from .keys import AUTH, HUB, SETTINGS, SOCKET_RELAY, STORE
from .proxy import client_address
from .request_schemas import JoinRequest, LinkCheckRequest
from .security import clear_private_cookie, set_private_cookie

PARTICIPANT_COOKIE = "tc_participant"
COOKIE_PATH = "/api/"
LINK_CHECKS_PER_WINDOW = 30  # per client address
LINK_CHECK_WINDOW_S = 60.0

routes = web.RouteTableDef()


async def current_participant(request: web.Request) -> Participant:
    """The participant behind the cookie (Unauthenticated when none or ended)."""
    return await request.app[HUB].services.participants.authenticate(
        request.cookies.get(PARTICIPANT_COOKIE)
    )


async def visit_context(request: web.Request, consultation_id: str) -> dict[str, Any]:
    """What the patient sees while waiting: the consultation's label and the doctor's name."""
    consultation = await request.app[HUB].services.consultations.get(consultation_id)
    host = await request.app[AUTH].accounts.get(consultation.host_id)
    return {"label": consultation.label, "doctor_name": host.display_name if host is not None else ""}


@routes.post("/api/join/check")
async def check_link(request: web.Request) -> web.Response:
    """Read-only link check before the device check (docs/api.md): nothing is consumed."""
    body = await read_body(request, LinkCheckRequest)
    key = f"link-check:{address_key(client_address(request))}"
    attempts = await request.app[STORE].incr(key, LINK_CHECK_WINDOW_S)
    if attempts > LINK_CHECKS_PER_WINDOW:
        raise RateLimited("Too many link checks; wait a moment.", retry_after_s=LINK_CHECK_WINDOW_S)
    result = await request.app[HUB].services.participants.check_link(
        body.token, request.cookies.get(PARTICIPANT_COOKIE)
    )
    return web.json_response({"status": result.status, "consultation_id": result.consultation_id,
                              **await visit_context(request, result.consultation_id)})


@routes.post("/api/join")
async def join(request: web.Request) -> web.Response:
    body = await read_body(request, JoinRequest)
    result = await request.app[HUB].services.participants.join(
        body.token, body.display_name, body.device_check, consultation_id=body.consultation_id,
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
    p = await current_participant(request)
    return web.json_response({**p.public(), **await visit_context(request, p.consultation_id)})


@routes.post("/api/participant/leave")
async def leave(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    p = await current_participant(request)
    relay = request.app.get(SOCKET_RELAY)
    if relay is None or not await relay.forward_leave(p):  # owned elsewhere: leave there
        await request.app[HUB].leave(p)
    response = web.Response(status=204)
    clear_private_cookie(response, PARTICIPANT_COOKIE, request.app[SETTINGS], path=COOKIE_PATH)
    return response
