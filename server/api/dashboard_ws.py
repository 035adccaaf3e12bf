"""The dashboard socket `GET /api/dashboard/ws` (docs/api.md "Dashboard socket"): one per open
dashboard tab, authenticated by the staff session cookie before the upgrade, Origin-checked,
registered under its staff session so that logout or revocation closes it (4401) like the
consultation sockets. Server → client only: a snapshot of `consultation-status` messages, then
one per change. Client frames are ignored (text, 1 KiB at most)."""

from __future__ import annotations

from aiohttp import WSMsgType, web

from .auth_context import require_staff
from .keys import HUB, SETTINGS, STAFF_SOCKETS
from .security import check_origin
from .ws_transport import HEARTBEAT_S, AiohttpTransport

MAX_CLIENT_FRAME = 1024
routes = web.RouteTableDef()


@routes.get("/api/dashboard/ws")
async def dashboard_ws(request: web.Request) -> web.WebSocketResponse:
    check_origin(request, request.app[SETTINGS], required=True)
    principal = await require_staff(request)  # 401 before any upgrade
    hub, registry = request.app[HUB], request.app[STAFF_SOCKETS]
    ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_FRAME, heartbeat=HEARTBEAT_S, timeout=2.0)
    await ws.prepare(request)
    conn = AiohttpTransport(ws)
    registry.add(principal.session_id_hash, conn)
    try:
        await hub.dashboard.open(principal.account_id, conn)  # announced before the ask below
        if not await registry.still_valid(principal.session_id_hash):
            return ws
        for status in await hub.statuses_for(principal.account_id):
            await conn.send(status)
        await hub.dashboard.ask_snapshot(principal.account_id)  # the other nodes' lobbies
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
    finally:
        registry.discard(principal.session_id_hash, conn)
        await hub.dashboard.close(principal.account_id, conn)
    return ws
