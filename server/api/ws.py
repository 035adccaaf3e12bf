"""The consultation WebSocket `GET /api/consultations/{cid}/ws` (docs/api.md "WebSocket").

Origin is checked before the upgrade. A participant is recognised by the `tc_participant`
cookie; a doctor by a room token in the first message (never in the URL), which must arrive
within HELLO_TIMEOUT_S or the socket closes 4401. Frames: text only, at most 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from .. import metrics
from ..consultations.models import Participant
from ..errors import DomainError, RateLimited, Unavailable
from ..signalling.chat import CHAT_MESSAGE_TYPES
from ..signalling.connection import CLOSE_UNAUTHENTICATED, SignallingConnection, Transport
from ..signalling.e2ee import E2EE_MESSAGE_TYPES
from ..signalling.envelope import MAX_MESSAGE_BYTES, error_message
from ..signalling.media import MEDIA_MESSAGE_TYPES
from ..signalling.recording_messages import RECORDING_MESSAGE_TYPES
from ..signalling.staff_sockets import CLOSE_SESSION_ENDED, StaffSocketRegistry
from .auth_context import StaffPrincipal, require_staff
from .keys import CLOCK, HUB, SETTINGS, SOCKET_RELAY, STAFF_SOCKETS, STORE, UNAUTHENTICATED_SOCKETS
from .participant_routes import current_participant
from .security import check_origin
from .ws_admission import UnauthenticatedSockets
from .ws_frames import Frame, FrameSource, SocketIdentity
from .ws_relay import CLOSE_TRY_AGAIN, RelayTransport
from .ws_transport import HEARTBEAT_S, AiohttpTransport

log = logging.getLogger("teleconsult.ws")

HELLO_TIMEOUT_S = 5.0
RECONNECT_WINDOW_S = 60.0
MAX_RECONNECTS_PER_WINDOW = 30
routes = web.RouteTableDef()


@routes.get("/api/consultations/{cid}/ws")
async def consultation_ws(request: web.Request) -> web.StreamResponse:
    check_origin(request, request.app[SETTINGS], required=True)
    # Until its hello is handled the socket holds an unauthenticated slot (ws_admission.py);
    # taken first, so a flood over the caps costs no store work.
    address = request.remote or "unknown"
    pending = request.app[UNAUTHENTICATED_SOCKETS]
    pending.acquire(address)
    slot = _Slot(pending, address)
    try:
        return await _consultation_ws(request, slot)
    finally:
        slot.release()


async def _consultation_ws(request: web.Request, slot: _Slot) -> web.StreamResponse:
    cid = request.match_info["cid"]
    participant: Participant | None = None
    try:
        participant = await current_participant(request)
    except Unavailable:
        raise  # the store is away: 503 before the upgrade, not "unauthenticated"
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
    return await _open(request, cid, participant, principal, slot)


class _Slot:
    def __init__(self, pending: UnauthenticatedSockets, address: str) -> None:
        self._pending, self._address, self._held = pending, address, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pending.release(self._address)


async def _open(request: web.Request, cid: str, participant: Participant | None,
                principal: StaffPrincipal | None, slot: _Slot) -> web.WebSocketResponse:
    # timeout: how long a close waits for the peer's close frame (a busy or gone peer must not
    # hold a handler for aiohttp's default 10 s).
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT_S, autoping=True, timeout=2.0
    )
    await ws.prepare(request)
    identity = SocketIdentity(
        participant_id=participant.participant_id if participant is not None else None,
        staff_session_ref=principal.session_id_hash if principal is not None else None,
        host_display_name=principal.display_name if principal is not None else "",
    )
    if await relay_if_owned_elsewhere(request.app, ws, cid, identity, slot.release):
        return ws
    await serve_socket(request.app, cid, AiohttpTransport(ws), AiohttpFrames(ws), identity,
                       participant=participant, on_authenticated=slot.release)
    return ws


class AiohttpFrames:
    """The frames of an aiohttp WebSocket, as serve_socket reads them."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    async def receive(self) -> Frame:
        msg = await self._ws.receive()
        if msg.type is WSMsgType.TEXT:
            return Frame("text", msg.data)
        if msg.type is WSMsgType.BINARY:
            return Frame("binary", "")
        return Frame("closed", "")  # CLOSE, CLOSING, CLOSED, ERROR (e.g. over max_msg_size: 1009)


async def serve_socket(app: web.Application, cid: str, transport: Transport, frames: FrameSource,
                       identity: SocketIdentity, *, participant: Participant | None,
                       on_authenticated: Callable[[], None]) -> None:
    """Run one consultation socket on this node (its owner): the local ones, and those another
    node relays here (ws_relay.py)."""
    conn = SignallingConnection(
        cid, app[HUB], transport, app[CLOCK],
        participant=participant,
        staff_session_ref=identity.staff_session_ref,
        host_display_name=identity.host_display_name,
        media_types=(MEDIA_MESSAGE_TYPES | RECORDING_MESSAGE_TYPES | E2EE_MESSAGE_TYPES
                     | CHAT_MESSAGE_TYPES),
        on_authenticated=on_authenticated,  # before the welcome and the call join
    )
    log.info("websocket opened for consultation %s", cid)
    staff = _StaffGuard(app[STAFF_SOCKETS], identity.staff_session_ref)
    metrics.WEBSOCKETS_OPEN.inc()
    try:
        await _serve(frames, conn, staff, on_authenticated)
    finally:
        staff.forget(conn)
        await conn.on_disconnect(frames.close_code)
        close_code = conn.close_code or frames.close_code
        log.info(
            "websocket closed for consultation %s participant %s code %s",
            cid, conn.participant_id or "-", close_code,
        )
        metrics.websocket_closed(close_code)


class _StaffGuard:
    """A host socket is registered under its staff session (closed when that session ends) and
    re-validates the session before each message it sends is handled."""

    def __init__(self, registry: StaffSocketRegistry, session_ref: str | None) -> None:
        self._registry = registry
        self._ref = session_ref
        self._registered = False

    async def admit(self, conn: SignallingConnection) -> bool:
        """After hello: register a host socket; False (and closed) when its session has ended."""
        if not conn.is_host or self._ref is None:
            return True
        self._registry.add(self._ref, conn)
        self._registered = True
        return await self.still_valid(conn)

    async def still_valid(self, conn: SignallingConnection) -> bool:
        if not self._registered or self._ref is None:
            return True
        if await self._registry.still_valid(self._ref):
            return True
        await conn.close(CLOSE_SESSION_ENDED, "session ended")
        return False

    def forget(self, conn: SignallingConnection) -> None:
        if self._registered and self._ref is not None:
            self._registry.discard(self._ref, conn)


async def _serve(frames: FrameSource, conn: SignallingConnection, staff: _StaffGuard,
                 release: Callable[[], None]) -> None:
    try:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            first = await frames.receive()
    except TimeoutError:
        await conn.close(CLOSE_UNAUTHENTICATED, "hello expected")
        return
    if first.kind != "text":
        await conn.close(CLOSE_UNAUTHENTICATED if first.kind == "binary" else 1000, "hello expected")
        return
    await conn.handle_text(first.text)
    release()  # refused and closed (an accepted hello released it already)
    if not await staff.admit(conn):
        return
    while conn.state.value != "closed":
        frame = await frames.receive()
        if frame.kind == "text":
            if not await staff.still_valid(conn):
                return
            await conn.handle_text(frame.text)
        elif frame.kind == "binary":
            await conn.send(error_message("text_only", "Only text (JSON) messages are accepted."))
        else:
            return


async def relay_if_owned_elsewhere(app: web.Application, ws: web.WebSocketResponse, cid: str,
                                   identity: SocketIdentity, release: Callable[[], None]) -> bool:
    """Relay this (prepared) socket when another node owns `cid`; True when it was handled here
    (relayed, or refused because Redis is away). Unauthenticated sockets stay local (refused at
    their hello)."""
    relay = app.get(SOCKET_RELAY)
    if relay is None or (identity.participant_id is None and identity.staff_session_ref is None):
        return False
    try:
        if identity.participant_id is None:  # staff: place only a consultation that exists
            await app[HUB].services.consultations.get(cid)
        lease = await relay.owner_elsewhere(cid)
    except Unavailable as exc:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(error_message(exc.code, exc.message)))
        await ws.close(code=CLOSE_TRY_AGAIN, message=b"try again")
        return True
    except DomainError:
        return False
    if lease is None:
        return False
    await relay.relay(ws, lease, identity, release)
    return True


def socket_server(app: web.Application) -> Callable[
        [str, RelayTransport, FrameSource, SocketIdentity, Participant | None], Awaitable[None]]:
    """serve_socket bound to `app`, for the relay's owner side."""
    async def serve(cid: str, transport: RelayTransport, frames: FrameSource, identity: SocketIdentity,
                    participant: Participant | None) -> None:
        await serve_socket(app, cid, transport, frames, identity, participant=participant,
                           on_authenticated=lambda: None)

    return serve
