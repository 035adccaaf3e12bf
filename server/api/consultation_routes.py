"""Consultation routes (docs/api.md "Consultations"). The services and the hub are composed in
services.py; bodies are parsed by bodies.read_body."""

from __future__ import annotations

from aiohttp import web

from ..auth.totp import qr_svg
from ..consultations.models import Consultation, IssuedInvite, StaffActor
from ..errors import InvalidInput
from ..signalling.hub import ConsultationHub
from .auth_context import require_staff
from .bodies import NoBody, read_body
from .keys import HUB, SOCKET_RELAY
from .request_schemas import NewConsultation, NewInvite


async def staff_actor(request: web.Request) -> StaffActor:
    principal = await require_staff(request)
    return StaffActor(
        account_id=principal.account_id, role=principal.role, session_ref=principal.session_id_hash
    )


def hub_of(request: web.Request) -> ConsultationHub:
    return request.app[HUB]


async def _hosted(request: web.Request) -> tuple[StaffActor, ConsultationHub, Consultation]:
    """The acting staff member, the hub, and the consultation `{cid}` they host."""
    actor = await staff_actor(request)
    hub = hub_of(request)
    consultation = await hub.services.consultations.require_host(request.match_info["cid"], actor)
    return actor, hub, consultation


def _invite_created(issued: IssuedInvite) -> web.Response:
    return web.json_response(
        {"invite_id": issued.invite.invite_id, "link": issued.link, "expires_at": issued.invite.expires_at,
         "qr_svg": qr_svg(issued.link)},
        status=201,
    )


routes = web.RouteTableDef()


@routes.post("/api/consultations")
async def create_consultation(request: web.Request) -> web.Response:
    body = await read_body(request, NewConsultation)
    actor = await staff_actor(request)
    consultation = await hub_of(request).services.consultations.create(
        actor, label=body.label, scheduled_at=body.scheduled_at, max_participants=body.max_participants,
        e2ee=body.e2ee,
    )
    relay = request.app.get(SOCKET_RELAY)
    if relay is not None:  # with workers/nodes: the least-loaded one owns it from now (docs/cluster.md)
        await relay.place_new(consultation.id)
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
    body = await read_body(request, NewInvite)
    actor, hub, consultation = await _hosted(request)
    issued = await hub.services.invites.issue(consultation, body.role, actor)
    return _invite_created(issued)


@routes.get("/api/consultations/{cid}/invites")
async def list_invites(request: web.Request) -> web.Response:
    _, hub, consultation = await _hosted(request)
    return web.json_response([i.public() for i in await hub.services.invites.list_for(consultation.id)])


@routes.delete("/api/consultations/{cid}/invites/{invite_id}")
async def revoke_invite(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    actor, hub, consultation = await _hosted(request)
    await hub.services.invites.revoke(consultation.id, request.match_info["invite_id"], actor)
    return web.Response(status=204)


@routes.post("/api/consultations/{cid}/room-token")
async def create_room_token(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    actor, hub, consultation = await _hosted(request)
    if not consultation.is_live:
        raise InvalidInput("This consultation has ended.", code="consultation_closed")
    issued = await hub.services.room_tokens.issue(consultation, actor)
    return web.json_response({"room_token": issued.room_token, "expires_at": issued.expires_at})


async def _decide(request: web.Request, verb: str) -> web.Response:
    await read_body(request, NoBody)
    actor = await staff_actor(request)
    hub = hub_of(request)
    cid, pid = request.match_info["cid"], request.match_info["pid"]
    relay = request.app.get(SOCKET_RELAY)
    if relay is not None:  # another node owns the consultation: decide there (ws_relay.py)
        await hub.services.consultations.require_host(cid, actor)
        if await relay.forward_decision(cid, pid, verb, actor):
            return web.Response(status=204)
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


@routes.post("/api/consultations/{cid}/participants/{pid}/move")
async def move_device(request: web.Request) -> web.Response:
    """A replacement link for one participant (docs/api.md "Moving to another device")."""
    await read_body(request, NoBody)
    actor = await staff_actor(request)
    issued = await hub_of(request).move_device(request.match_info["cid"], request.match_info["pid"], actor)
    return _invite_created(issued)


@routes.post("/api/consultations/{cid}/end")
async def end_consultation(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    actor = await staff_actor(request)
    await hub_of(request).end(request.match_info["cid"], actor)
    return web.Response(status=204)
