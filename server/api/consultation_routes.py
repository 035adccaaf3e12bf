"""Consultation routes (docs/api.md "Consultations") and the wiring of the rooms feature:
`setup_consultations(app)` builds the services and the hub in a cleanup context and adds the
consultation, participant and WebSocket routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..auth.totp import qr_svg
from ..errors import InvalidInput
from ..rooms.consultations import ConsultationService
from ..rooms.invites import InviteService
from ..rooms.models import StaffActor
from ..rooms.participants import ParticipantService
from ..rooms.room_tokens import RoomTokenService
from ..sfu.ice import IceSettings, browser_ice_servers
from ..signalling.hub import ConsultationHub, RoomsServices
from ..signalling.media_gateway import SfuMediaGateway
from .auth_context import require_staff
from .keys import AUDIT, CLOCK, SETTINGS, STORE

HUB = web.AppKey("consultation_hub", ConsultationHub)
MAX_BODY_BYTES = 16 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput("The request body is too large.", code="invalid_body")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidInput("The request body must be JSON.", code="invalid_body") from None
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.", code="invalid_body")
    return data


async def staff_actor(request: web.Request) -> StaffActor:
    principal = await require_staff(request)
    return StaffActor(
        account_id=principal.account_id, role=principal.role, session_ref=principal.session_id_hash
    )


def hub_of(request: web.Request) -> ConsultationHub:
    return request.app[HUB]


routes = web.RouteTableDef()


@routes.post("/api/consultations")
async def create_consultation(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    body = await read_json(request)
    consultation = await hub_of(request).services.consultations.create(
        actor, label=body.get("label"), scheduled_at=body.get("scheduled_at"),
        max_participants=body.get("max_participants"),
    )
    return web.json_response(consultation.public(), status=201)


@routes.get("/api/consultations")
async def list_consultations(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    found = await hub_of(request).services.consultations.list_for(actor)
    return web.json_response([c.public() for c in found])


@routes.get("/api/consultations/{cid}")
async def get_consultation(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    hub = hub_of(request)
    consultation = await hub.services.consultations.get_for(request.match_info["cid"], actor)
    people = await hub.services.participants.list_for(consultation.id)
    lobby = hub.lobbies.get(consultation.id)
    connected = set(lobby.connected_ids()) if lobby is not None else set()
    return web.json_response({
        **consultation.public(),
        "participants": [
            {**p.public(), "connected": p.participant_id in connected} for p in people
        ],
        "waiting": [p.lobby_entry() for p in people if p.state.value == "waiting"],
    })


@routes.post("/api/consultations/{cid}/invites")
async def create_invite(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    hub = hub_of(request)
    consultation = await hub.services.consultations.require_host(request.match_info["cid"], actor)
    body = await read_json(request)
    issued = await hub.services.invites.issue(consultation, body.get("role"), actor)
    return web.json_response(
        {"invite_id": issued.invite.invite_id, "link": issued.link, "expires_at": issued.invite.expires_at,
         "qr_svg": qr_svg(issued.link)},
        status=201,
    )


@routes.get("/api/consultations/{cid}/invites")
async def list_invites(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    hub = hub_of(request)
    consultation = await hub.services.consultations.require_host(request.match_info["cid"], actor)
    return web.json_response([i.public() for i in await hub.services.invites.list_for(consultation.id)])


@routes.delete("/api/consultations/{cid}/invites/{invite_id}")
async def revoke_invite(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    hub = hub_of(request)
    consultation = await hub.services.consultations.require_host(request.match_info["cid"], actor)
    await hub.services.invites.revoke(consultation.id, request.match_info["invite_id"], actor)
    return web.Response(status=204)


@routes.post("/api/consultations/{cid}/room-token")
async def create_room_token(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    hub = hub_of(request)
    consultation = await hub.services.consultations.require_host(request.match_info["cid"], actor)
    if not consultation.is_live:
        raise InvalidInput("This consultation has ended.", code="consultation_closed")
    issued = await hub.services.room_tokens.issue(consultation, actor)
    return web.json_response({"room_token": issued.room_token, "expires_at": issued.expires_at})


async def _decide(request: web.Request, verb: str) -> web.Response:
    actor = await staff_actor(request)
    hub = hub_of(request)
    cid, pid = request.match_info["cid"], request.match_info["pid"]
    if verb == "admit":
        await hub.admit(cid, pid, actor)
    elif verb == "deny":
        await hub.deny(cid, pid, actor)
    else:
        await hub.remove(cid, pid, actor)
    return web.Response(status=204)


@routes.post("/api/consultations/{cid}/participants/{pid}/{verb:admit|deny|remove}")
async def decide(request: web.Request) -> web.Response:
    return await _decide(request, request.match_info["verb"])


@routes.post("/api/consultations/{cid}/end")
async def end_consultation(request: web.Request) -> web.Response:
    actor = await staff_actor(request)
    await hub_of(request).end(request.match_info["cid"], actor)
    return web.Response(status=204)


def setup_consultations(app: web.Application) -> None:
    from .participant_routes import routes as participant_routes
    from .ws import routes as ws_routes

    async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
        store, clock, settings, audit = app[STORE], app[CLOCK], app[SETTINGS], app[AUDIT]
        consultations = ConsultationService(store, clock, settings, audit)
        invites = InviteService(store, clock, settings, audit)
        services = RoomsServices(
            consultations=consultations,
            invites=invites,
            participants=ParticipantService(store, clock, audit, consultations, invites),
            room_tokens=RoomTokenService(store, clock, settings),
        )
        ice = IceSettings.from_settings(settings)
        hub = ConsultationHub(
            services,
            SfuMediaGateway(ice, clock),
            lambda pid: browser_ice_servers(ice, user_id=pid, now=clock.now()),
        )
        app[HUB] = hub
        try:
            yield
        finally:
            await hub.close()

    app.cleanup_ctx.append(hub_ctx)
    app.router.add_routes(routes)
    app.router.add_routes(participant_routes)
    app.router.add_routes(ws_routes)
