"""The consultation WebSocket `GET /api/consultations/{cid}/ws` (docs/api.md "WebSocket").

Origin is checked before the upgrade. A participant is recognised by the `tc_participant`
cookie; a doctor by a room token in the first message (never in the URL), which must arrive
within HELLO_TIMEOUT_S or the socket closes 4401. Frames: text only, at most 64 KiB.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from ..errors import DomainError, RateLimited
from ..rooms.models import Participant
from ..signalling.connection import CLOSE_UNAUTHENTICATED, SignallingConnection
from ..signalling.envelope import MAX_MESSAGE_BYTES, error_message
from ..signalling.media import MEDIA_MESSAGE_TYPES
from ..signalling.recording import RECORDING_MESSAGE_TYPES
from .auth_context import StaffPrincipal, require_staff
from .consultation_routes import HUB
from .keys import CLOCK, SETTINGS, STORE
from .participant_routes import current_participant
from .security import check_origin

log = logging.getLogger("teleconsult.ws")

HELLO_TIMEOUT_S = 5.0
# A silent peer is pinged after HEARTBEAT_S and dropped HEARTBEAT_S / 2 later: a frozen or
# unplugged device leaves the call within ~23 s (a killed one at once: its socket closes).
HEARTBEAT_S = 15.0
RECONNECT_WINDOW_S = 60.0
MAX_RECONNECTS_PER_WINDOW = 30
routes = web.RouteTableDef()


class AiohttpTransport:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def send_text(self, text: str) -> None:
        if self._ws.closed:
            return
        try:
            await self._ws.send_str(text)
        except (ConnectionError, RuntimeError):
            log.info("send on a closing websocket dropped")

    async def close(self, code: int, reason: str) -> None:
        if not self._ws.closed:
            await self._ws.close(code=code, message=reason.encode()[:120])


@routes.get("/api/consultations/{cid}/ws")
async def consultation_ws(request: web.Request) -> web.StreamResponse:
    check_origin(request, request.app[SETTINGS], required=True)
    cid = request.match_info["cid"]
    hub = request.app[HUB]
    participant: Participant | None = None
    try:
        participant = await current_participant(request)
    except DomainError:
        participant = None
    if participant is not None and participant.consultation_id != cid:
        participant = None
    if participant is not None:
        # Each admitted (re)connection builds a new peer connection: bound how often one
        # participant session may reconnect, so a reconnect loop cannot load other calls.
        attempts = await request.app[STORE].incr(
            f"ws-connect:{participant.participant_id}", RECONNECT_WINDOW_S
        )
        if attempts > MAX_RECONNECTS_PER_WINDOW:
            raise RateLimited("Too many reconnections; wait a moment.", retry_after_s=RECONNECT_WINDOW_S)
    principal: StaffPrincipal | None = None
    try:
        principal = await require_staff(request)
    except DomainError:
        principal = None
    # timeout: how long a close waits for the peer's close frame (a busy or gone peer must not
    # hold a handler for aiohttp's default 10 s).
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT_S, autoping=True, timeout=2.0
    )
    await ws.prepare(request)
    conn = SignallingConnection(
        cid, hub, AiohttpTransport(ws), request.app[CLOCK],
        participant=participant,
        staff_session_ref=principal.session_id_hash if principal is not None else None,
        host_display_name=principal.display_name if principal is not None else "",
        media_types=MEDIA_MESSAGE_TYPES | RECORDING_MESSAGE_TYPES,
    )
    log.info("websocket opened for consultation %s", cid)
    try:
        await _serve(ws, conn)
    finally:
        await conn.on_disconnect()
        log.info(
            "websocket closed for consultation %s participant %s code %s",
            cid, conn.participant_id or "-", conn.close_code or ws.close_code,
        )
    return ws


async def _serve(ws: web.WebSocketResponse, conn: SignallingConnection) -> None:
    try:
        first = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT_S)
    except TimeoutError:
        await conn.close(CLOSE_UNAUTHENTICATED, "hello expected")
        return
    if first.type is not WSMsgType.TEXT:
        await conn.close(CLOSE_UNAUTHENTICATED if first.type is WSMsgType.BINARY else 1000, "hello expected")
        return
    await conn.handle_text(first.data)
    while conn.state.value != "closed":
        msg = await ws.receive()
        if msg.type is WSMsgType.TEXT:
            await conn.handle_text(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await conn.send(error_message("text_only", "Only text (JSON) messages are accepted."))
        else:  # CLOSE, CLOSING, CLOSED, ERROR (e.g. a frame over max_msg_size: aiohttp closes 1009)
            return
