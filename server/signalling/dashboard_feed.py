"""The live dashboard feed: each staff member's open dashboard sockets, by account id.

The hub publishes a `consultation-status` message (who waits, who is in the call, whether the
doctor is there) to the consultation host's dashboards whenever its lobby changes, so the list
view is live without polling (docs/api.md "Dashboard socket"). The status is made in the
process that owns the consultation (DESIGN D8); with several nodes the doctor's dashboard may be
open on another one, so a `fanout` (the cluster's, set by the composition root) carries each
status to every node, whose `deliver` hands it to the sockets it holds, and carries a new
dashboard's ask for the statuses the other nodes hold. Names go only to the doctor's own
sockets; no log line carries one.

A status is made only for an account with a dashboard open (`watching`): on this node (its own
sockets, known at once) or, as the fan-out tells, on another one. The fan-out hears of the
other nodes' dashboards from their announcements (`watch`: this node's first socket of an
account opened, its last closed) and answers True whenever it cannot tell, so a doubt costs a
publish, never a lost status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from .keyed_sets import KeyedSets

log = logging.getLogger("teleconsult.dashboard")


class FeedConnection(Protocol):
    async def send(self, message: Mapping[str, Any]) -> None:
        """Must not raise on a closed connection."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Idempotent."""
        ...


class DashboardFanout(Protocol):
    async def publish(self, account_id: str, message: Mapping[str, Any]) -> None:
        """To that account's dashboards on every node (this one's included). May raise."""
        ...

    async def ask_snapshot(self, account_id: str) -> None:
        """Ask the other nodes for the statuses of that account's consultations they hold.
        Goes out after any `watch` this node announced before it. May raise."""
        ...

    async def watch(self, account_id: str, on: bool) -> None:
        """Tell the other nodes that this node's first dashboard socket of the account opened
        (on) or its last one closed (off). May raise."""
        ...

    def watched_elsewhere(self, account_id: str) -> bool:
        """True when a dashboard of the account may be open on another node, or when the
        fan-out cannot tell."""
        ...


class DashboardFeed:
    def __init__(self) -> None:
        self._watchers: KeyedSets[FeedConnection] = KeyedSets()
        self.fanout: DashboardFanout | None = None

    async def open(self, account_id: str, conn: FeedConnection) -> None:
        """A dashboard socket of the account opened here (the other nodes are told of the
        account's first one before this returns, so an `ask_snapshot` after it follows)."""
        first = account_id not in self._watchers
        self._watchers.add(account_id, conn)
        if first:
            await self._announce(account_id, True)

    async def close(self, account_id: str, conn: FeedConnection) -> None:
        """A dashboard socket of the account closed here (idempotent)."""
        if conn not in self._watchers.members(account_id):
            return
        self._watchers.discard(account_id, conn)
        if account_id not in self._watchers:
            await self._announce(account_id, False)

    async def close_all(self, code: int, reason: str) -> None:
        """Shutdown: close every dashboard socket of this node, side by side (each socket's
        handler then calls `close`, which tells the other nodes)."""
        conns = [conn for account in self._watchers.key_list() for conn in self._watchers.members(account)]
        await asyncio.gather(*(conn.close(code, reason) for conn in conns), return_exceptions=True)

    def watching(self, account_id: str) -> bool:
        """True when a dashboard of the account is open here, or may be on another node."""
        if account_id in self._watchers:
            return True
        return self.fanout is not None and self.fanout.watched_elsewhere(account_id)

    def accounts(self) -> list[str]:
        """The accounts with a dashboard socket open on this node."""
        return self._watchers.key_list()

    def count(self) -> int:
        return self._watchers.count()

    async def _announce(self, account_id: str, on: bool) -> None:
        if self.fanout is not None:
            try:
                await self.fanout.watch(account_id, on)
            except Exception:  # the periodic re-announcement of the fan-out catches up
                log.warning("dashboard watch announcement failed")

    async def publish(self, account_id: str, message: Mapping[str, Any]) -> None:
        """To the account's dashboards on every node; this node's alone when there is no
        fan-out or it fails (Redis away: the other nodes' dashboards catch up on the next change)."""
        if self.fanout is not None:
            try:
                await self.fanout.publish(account_id, message)
                return
            except Exception:
                log.warning("dashboard fan-out failed; this node's dashboards only")
        await self.deliver(account_id, message)

    async def ask_snapshot(self, account_id: str) -> None:
        if self.fanout is not None:
            try:
                await self.fanout.ask_snapshot(account_id)
            except Exception:
                log.warning("dashboard snapshot ask failed")

    async def deliver(self, account_id: str, message: Mapping[str, Any]) -> None:
        """To the account's dashboard sockets on this node."""
        for conn in self._watchers.members(account_id):
            try:
                await conn.send(message)
            except Exception:  # one dead dashboard must not stop the others
                log.warning("dashboard send failed")


def status_message(consultation_id: str, *, state: str, waiting: list[dict[str, Any]],
                   in_call: list[dict[str, Any]], host_present: bool) -> dict[str, Any]:
    return {
        "type": "consultation-status",
        "consultation_id": consultation_id,
        "state": state,
        "waiting": waiting,
        "in_call": in_call,
        "host_present": host_present,
    }
