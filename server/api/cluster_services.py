"""The cluster's two cleanup contexts (docs/cluster.md); both do nothing without Redis.

`cluster_ctx` (after the store, before auth): checks the key fingerprint, joins the node
registry and the bus, and gives auth the pub/sub session revocations. `relay_ctx` (after the
hub): the socket relay, and the hooks the node needs from the hub (is a consultation in use
here; close one whose lease moved).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from .. import metrics
from ..auth.secretbox import KEY_FILE_NAME, SecretBox
from ..clock import Clock
from ..cluster.dashboard_watch import RemoteDashboards
from ..cluster.fingerprint import key_fingerprint
from ..cluster.node import ClusterNode
from ..config import Settings
from ..errors import ConfigError, Unavailable
from ..recording.keys import Keyring
from ..signalling.hub import ConsultationHub
from .keys import CLOCK, CLUSTER, HUB, READINESS, SETTINGS, SOCKET_RELAY
from .ws import socket_server
from .ws_relay import CLOSE_MOVED, SocketRelay


def local_key_fingerprint(settings: Settings, app_clock: Clock) -> str:
    """The fingerprint of this node's key files (creating them on a first start, as auth and
    recording would)."""
    SecretBox.load_or_create(settings.data_dir)
    try:
        secret = (settings.data_dir / KEY_FILE_NAME).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the app secret key: {exc.strerror}") from None
    keyring = Keyring.load_or_create(settings.kek_path, app_clock)
    return key_fingerprint(secret, ((k, keyring.get(k).key) for k in keyring.kek_ids))


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.redis_url:
        yield
        return
    fingerprint = local_key_fingerprint(settings, app[CLOCK])
    node = ClusterNode.build(settings, app[CLOCK], settings.port, fingerprint)
    try:
        await node.start()
    except BaseException:
        await node.close()
        raise
    app[CLUSTER] = node
    try:
        yield
    finally:
        await node.close()


class ClusterDashboards:
    """The dashboard feed across nodes (signalling.dashboard_feed.DashboardFanout) on the
    cluster's shared dashboards channel: `status` messages go to every node's sockets of that
    account, a `snapshot` ask makes every other node publish the statuses it holds, and `watch`
    / `watch-all` announce which accounts this node holds dashboards of (RemoteDashboards), so
    an owner publishes a status only when a dashboard of its host is open somewhere.

    This node's announcements (watch, watch-all, snapshot asks) go out one at a time in call
    order (one lock, each PUBLISH awaited): Redis delivers them in that order, so a `watch-all`
    never overtakes an older `watch`, and a dashboard's `watch` reaches the owner before its
    snapshot ask."""

    def __init__(self, node: ClusterNode, hub: ConsultationHub, clock: Clock, announce_s: float,
                 heartbeat_s: float) -> None:
        self._node = node
        self._hub = hub
        self._clock = clock
        self._announce_s = announce_s
        self._announcing = asyncio.Lock()
        self._announced_at: float | None = None  # last whole-set announcement that got out
        # A full round reaches this node within one period plus a heartbeat of each side.
        self.remote = RemoteDashboards(clock, expiry_s=3 * announce_s, settle_s=announce_s + 2 * heartbeat_s)

    async def publish(self, account_id: str, message: Mapping[str, Any]) -> None:
        await self._node.send_dashboards({"k": "status", "account": account_id, "status": dict(message)})

    async def ask_snapshot(self, account_id: str) -> None:
        await self._announce({"k": "snapshot", "account": account_id})

    async def watch(self, account_id: str, on: bool) -> None:
        try:
            await self._announce({"k": "watch", "account": account_id, "on": on})
        except Unavailable:
            self._announced_at = None  # the whole set goes out at the next heartbeat instead
            raise

    def watched_elsewhere(self, account_id: str) -> bool:
        return self.remote.may_watch(account_id, self._node.listening_since)

    async def tick(self) -> None:
        """Each heartbeat (a node watchdog): forget lapsed entries; every announcement period
        (and at once after a failed one) announce this node's whole set."""
        self.remote.prune()
        self._count_remote()
        metrics.DASHBOARD_WATCH_SETTLED.set(int(self.remote.settled(self._node.listening_since)))
        now = self._clock.monotonic()
        if self._announced_at is not None and now - self._announced_at < self._announce_s:
            return
        try:
            await self._announce({"k": "watch-all"}, whole_set=True)
        except Unavailable:
            return  # retried at the next heartbeat
        self._announced_at = now

    def _count_remote(self) -> None:
        metrics.DASHBOARD_REMOTE_ACCOUNTS.set(self.remote.account_count())

    async def _announce(self, message: dict[str, Any], *, whole_set: bool = False) -> None:
        async with self._announcing:
            if whole_set:  # taken under the lock: consistent with the watch messages around it
                message["accounts"] = self._hub.dashboard.accounts()
            await self._node.send_dashboards({**message, "from": self._node.node_id})

    async def on_message(self, message: dict[str, Any]) -> None:
        kind, sender, account = message.get("k"), message.get("from"), message.get("account")
        if kind == "status":
            status = message.get("status")
            if isinstance(account, str) and isinstance(status, dict):
                await self._hub.dashboard.deliver(account, status)
            return
        if not isinstance(sender, str) or sender == self._node.node_id:
            return  # this node's own announcements: its sockets count locally
        accounts = message.get("accounts")
        if kind == "snapshot" and isinstance(account, str):
            for held in await self._hub.statuses_for(account):
                await self.publish(account, held)
        elif kind == "watch" and isinstance(account, str):
            self.remote.watch(sender, account, message.get("on") is True)
            self._count_remote()
        elif kind == "watch-all" and isinstance(accounts, list):
            self.remote.replace(sender, (a for a in accounts if isinstance(a, str)))
            self._count_remote()


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    node = app.get(CLUSTER)
    if node is None:
        yield
        return
    hub = app[HUB]
    relay = SocketRelay(node, hub, socket_server(app))
    app[SOCKET_RELAY] = relay
    node.in_use = lambda cid: hub.lobbies.get(cid) is not None

    async def fenced(cid: str) -> None:
        await hub.evict(cid, CLOSE_MOVED, "consultation moved")

    async def drain_message(message: dict[str, object]) -> None:
        app[READINESS].draining = True
        await node.start_drain()

    node.on_fenced = fenced
    node.handlers["drain"] = drain_message
    settings = app[SETTINGS]
    dashboards = ClusterDashboards(node, hub, app[CLOCK], settings.cluster_dashboard_announce_s,
                                   settings.cluster_heartbeat_s)
    hub.dashboard.fanout = dashboards
    node.on_dashboard = dashboards.on_message
    node.watchdogs.append(dashboards.tick)
    try:
        yield
    finally:
        await relay.close()
