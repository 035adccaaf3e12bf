"""A server-side aiohttp WebSocket as the signalling layer's transports see it: text or a JSON
message out, a close with a code; a send on a socket that is closing is dropped, never raised
(the consultation socket, api/ws.py, and the dashboard socket, api/dashboard_ws.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

log = logging.getLogger("teleconsult.ws")
# A silent peer is pinged after HEARTBEAT_S and dropped HEARTBEAT_S / 2 later: a frozen or
# unplugged device leaves the call (or its dashboard) within ~23 s; a killed one at once.
HEARTBEAT_S = 15.0


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

    async def send(self, message: Mapping[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def close(self, code: int, reason: str) -> None:
        if not self._ws.closed:
            await self._ws.close(code=code, message=reason.encode()[:120])
