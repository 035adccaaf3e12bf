"""The cluster's two cleanup contexts (docs/cluster.md); both do nothing without Redis.

`cluster_ctx` (after the store, before auth): checks the key fingerprint, joins the node
registry and the bus, and gives auth the pub/sub session revocations. `relay_ctx` (after the
hub): the socket relay, and the hooks the node needs from the hub (is a consultation in use
here; close one whose lease moved).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from ..auth.secretbox import KEY_FILE_NAME, SecretBox
from ..clock import Clock
from ..cluster.fingerprint import key_fingerprint
from ..cluster.node import ClusterNode
from ..config import Settings
from ..errors import ConfigError
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
    account, a `snapshot` ask makes every other node publish the statuses it holds."""

    def __init__(self, node: ClusterNode, hub: ConsultationHub) -> None:
        self._node = node
        self._hub = hub

    async def publish(self, account_id: str, message: Mapping[str, Any]) -> None:
        await self._node.send_dashboards({"k": "status", "account": account_id, "status": dict(message)})

    async def ask_snapshot(self, account_id: str) -> None:
        await self._node.send_dashboards({"k": "snapshot", "account": account_id,
                                          "from": self._node.node_id})

    async def on_message(self, message: dict[str, Any]) -> None:
        account, status = message.get("account"), message.get("status")
        if not isinstance(account, str):
            return
        if message.get("k") == "status" and isinstance(status, dict):
            await self._hub.dashboard.deliver(account, status)
        elif message.get("k") == "snapshot" and message.get("from") != self._node.node_id:
            for held in await self._hub.statuses_for(account):
                await self.publish(account, held)


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
    dashboards = ClusterDashboards(node, hub)
    hub.dashboard.fanout = dashboards
    node.on_dashboard = dashboards.on_message
    try:
        yield
    finally:
        await relay.close()
