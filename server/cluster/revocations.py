"""Session revocations across nodes: `SessionRevocations` (auth/revocation.py) on Redis pub/sub.

`publish` tells this process's listeners at once and every other node through
`{p}cluster:revocations`; a node hearing a batch from another calls its own listeners, so a
logout on node B closes the host sockets it held on node A. When Redis is away a publish is
still delivered locally, and the holders' periodic re-check (staff_session_recheck_s) catches
what the bus could not carry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..auth.revocation import LocalSessionRevocations, RevocationListener
from ..errors import Unavailable
from .bus import ClusterBus

log = logging.getLogger("teleconsult.cluster")


class RedisSessionRevocations:
    def __init__(self, node: str, channel: str) -> None:
        self._node = node
        self._channel = channel
        self._local = LocalSessionRevocations()
        self._bus: ClusterBus | None = None

    def attach(self, bus: ClusterBus) -> None:
        self._bus = bus

    def subscribe(self, listener: RevocationListener) -> Callable[[], None]:
        return self._local.subscribe(listener)

    async def publish(self, id_hashes: Iterable[str]) -> None:
        batch = sorted(frozenset(id_hashes))
        if not batch:
            return
        await self._local.publish(batch)
        if self._bus is not None:
            try:
                await self._bus.publish(self._channel, {"from": self._node, "sessions": batch})
            except Unavailable:
                log.warning("session revocation not sent to other nodes (Redis away); they re-check")

    async def on_message(self, message: dict[str, Any]) -> None:
        """A batch from the bus (ours come back too: skipped, we told our listeners already)."""
        if message.get("from") == self._node:
            return
        sessions = message.get("sessions")
        if isinstance(sessions, list):
            await self._local.publish(str(s) for s in sessions)
