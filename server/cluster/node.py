"""One process's membership in the cluster: heartbeat, leases it owns (renewal and fencing),
placement, the message bus and drain.

Every `heartbeat_s` the node writes its liveness and true load, renews each lease it owns and
runs the registered watchdogs (relay.py: a relayed socket whose owner or ingress died is
closed). A renewal that finds a newer epoch means another node took the consultation (this one
was paused or cut off longer than the lease): `on_fenced` closes its room and sockets, and the
clients reconnect to the new owner. When Redis is away the node keeps serving what it owns
(media never touches Redis); leases that lapsed meanwhile are re-taken if no newer epoch exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ..clock import Clock
from ..config import Settings
from ..tasks import cancel_and_wait
from .bus import REDIS_DOWN, ClusterBus, Handler
from .fingerprint import check_fingerprint, refresh_fingerprint
from .keys import ClusterKeys
from .placement import Lease, NoNodeAvailable, Placement, Renewal
from .registry import NodeInfo, NodeRegistry, NodeState
from .revocations import RedisSessionRevocations

log = logging.getLogger("teleconsult.cluster")

HEARTBEAT_TASK = "cluster-heartbeat"
Watchdog = Callable[[], Awaitable[None]]


def default_node_id() -> str:
    return f"{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(3)}"


def open_cluster_redis(url: str) -> aioredis.Redis:
    """Short timeouts: a heartbeat or placement must fail fast while Redis is away."""
    return aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1.0,
                                   socket_timeout=2.0)


@dataclass
class OwnedConsultation:
    lease: Lease
    idle_since: float | None = None


class ClusterNode:
    def __init__(self, client: aioredis.Redis, settings: Settings, clock: Clock, info: NodeInfo,
                 fingerprint: str) -> None:
        self.node_id = info.node
        self.keys = ClusterKeys(settings.redis_prefix)
        self.client = client
        self.registry = NodeRegistry(client, self.keys, settings.cluster_node_ttl_s)
        self.placement = Placement(client, self.keys, settings.cluster_lease_ttl_s)
        self.revocations = RedisSessionRevocations(self.node_id, self.keys.revocations)
        self.state = NodeState.ACTIVE
        self.owned: dict[str, OwnedConsultation] = {}
        self.handlers: dict[str, Handler] = {}
        self.watchdogs: list[Watchdog] = []
        self.on_fenced: Callable[[str], Awaitable[None]] | None = None
        self.in_use: Callable[[str], bool] = lambda cid: False  # has live sockets or media here
        self.link_lost: list[Callable[[], Awaitable[None]]] = []
        self.drain_requested = asyncio.Event()
        self._info = info
        self._clock = clock
        self._settings = settings
        self._fingerprint = fingerprint
        self._task: asyncio.Task[None] | None = None
        self._redis_down = False
        self._redis_back_at = -1e9  # monotonic time Redis answered again after an outage
        self._subscribed_at: float | None = None  # monotonic time the bus last (re)subscribed
        self.on_dashboard: Handler | None = None  # a message of the shared dashboards channel
        self.bus = ClusterBus(client, {self.keys.channel(self.node_id): self._on_message,
                                       self.keys.revocations: self.revocations.on_message,
                                       self.keys.dashboards: self._on_dashboard},
                              on_link_lost=self._on_link_lost, on_subscribed=self._on_subscribed)
        self.revocations.attach(self.bus)

    @classmethod
    def build(cls, settings: Settings, clock: Clock, port: int, fingerprint: str) -> ClusterNode:
        node = settings.node_id or default_node_id()
        info = NodeInfo(node, socket.gethostname(), port, os.getpid(), clock.now())
        return cls(open_cluster_redis(settings.redis_url.get()), settings, clock, info, fingerprint)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the key fingerprint (ConfigError on a mismatch), announce, subscribe."""
        await check_fingerprint(self.client, self.keys, self._fingerprint, self._settings.cluster_node_ttl_s)
        await self.registry.beat(self._info, self.state, 0)
        await self.bus.start()
        self._task = asyncio.create_task(self._heartbeat(), name=HEARTBEAT_TASK)
        log.info("cluster node %s joined", self.node_id)

    async def close(self) -> None:
        """Stop beating, give back every lease (re-placed at once elsewhere), leave. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.bus.close()
        with contextlib.suppress(*REDIS_DOWN):
            for owned in list(self.owned.values()):
                await self.placement.release(owned.lease)
            self.owned.clear()
            await self.registry.leave(self.node_id)
        await self.client.aclose()

    # -- placement -------------------------------------------------------------------------

    async def place(self, cid: str) -> Lease:
        """Who owns `cid` (placing it if nobody does). Raises NoNodeAvailable, or a Redis error.
        Right after a Redis outage (not settled) only a current lease is returned: a lease that
        lapsed meanwhile belongs to an owner about to re-take it, not to whoever asks first."""
        if not self.settled():
            current = await self.placement.current(cid)
            if current is None:
                raise NoNodeAvailable("placement waits for the nodes to re-announce after Redis came back")
            lease = current
        else:
            lease = await self.placement.place(cid)
        if lease.node == self.node_id:
            self.adopt(lease)
        return lease

    def adopt(self, lease: Lease) -> None:
        current = self.owned.get(lease.consultation_id)
        if current is None or current.lease.epoch < lease.epoch:
            self.owned[lease.consultation_id] = OwnedConsultation(lease)

    def owns(self, cid: str, epoch: int) -> bool:
        owned = self.owned.get(cid)
        return owned is not None and owned.lease.epoch == epoch

    async def send(self, node: str, message: dict[str, Any]) -> bool:
        """Publish to one node's channel; False when that node is not listening. Raises
        Unavailable."""
        return await self.bus.publish(self.keys.channel(node), message) > 0

    async def send_dashboards(self, message: dict[str, Any]) -> None:
        """Publish to every node's dashboards handler (this node's included). Raises Unavailable."""
        await self.bus.publish(self.keys.dashboards, message)

    @property
    def listening_since(self) -> float | None:
        """Monotonic time since which this node has heard every message of its channels (the
        bus subscribed without a break and Redis answers); None while it may be missing some."""
        return None if self._redis_down else self._subscribed_at

    async def _on_dashboard(self, message: dict[str, Any]) -> None:
        if self.on_dashboard is not None:
            await self.on_dashboard(message)

    # -- drain -----------------------------------------------------------------------------

    async def start_drain(self) -> None:
        """No new placement here from now on; the consultations owned go on until they end."""
        if self.state is NodeState.DRAINING:
            return
        self.state = NodeState.DRAINING
        log.info("cluster node %s draining (%d consultations owned)", self.node_id, len(self.owned))
        self.drain_requested.set()
        with contextlib.suppress(*REDIS_DOWN):
            await self.registry.beat(self._info, self.state, len(self.owned))

    def settled(self) -> bool:
        """False for one node TTL after Redis came back: liveness keys that lapsed during the
        outage are being rewritten, so nobody is declared dead on them yet."""
        return (not self._redis_down
                and self._clock.monotonic() - self._redis_back_at >= self._settings.cluster_node_ttl_s)

    def busy(self) -> bool:
        return any(self.in_use(cid) for cid in self.owned)

    # -- internals -------------------------------------------------------------------------

    async def _on_message(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(str(message.get("k")))
        if handler is not None:
            await handler(message)

    def _on_subscribed(self) -> None:
        self._subscribed_at = self._clock.monotonic()

    async def _on_link_lost(self) -> None:
        self._redis_down = True  # until a heartbeat gets through again
        self._subscribed_at = None
        for callback in list(self.link_lost):
            try:
                await callback()
            except Exception:
                log.exception("cluster: a link-lost callback failed")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.cluster_heartbeat_s)  # the heartbeat period
            try:
                await self.beat_once()
                if self._redis_down:
                    self._redis_down = False
                    self._redis_back_at = self._clock.monotonic()
                    log.info("cluster node %s: Redis answers again", self.node_id)
            except REDIS_DOWN:
                if not self._redis_down:
                    self._redis_down = True
                    log.warning("cluster node %s: Redis does not answer; serving what it owns", self.node_id)
            for watchdog in list(self.watchdogs):
                try:
                    await watchdog()
                except REDIS_DOWN:
                    pass
                except Exception:
                    log.exception("cluster: a watchdog failed")

    async def beat_once(self) -> None:
        await self.registry.beat(self._info, self.state, len(self.owned))
        await refresh_fingerprint(self.client, self.keys, self._fingerprint,
                                  self._settings.cluster_node_ttl_s)
        now = self._clock.monotonic()
        for cid, owned in list(self.owned.items()):
            result = await self.placement.renew(owned.lease)
            if result is Renewal.LOST:
                del self.owned[cid]
                log.warning("consultation %s: lease epoch %d taken by another node; closing here",
                            cid, owned.lease.epoch)
                if self.on_fenced is not None:
                    await self.on_fenced(cid)
                continue
            if self.in_use(cid):
                owned.idle_since = None
            elif owned.idle_since is None:
                owned.idle_since = now
            elif now - owned.idle_since >= self._settings.cluster_idle_release_s:
                await self.placement.release(owned.lease)
                self.owned.pop(cid, None)
