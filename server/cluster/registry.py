"""Node liveness and load (LiveKit's routing idea, on plain keys): each node writes
`{p}cluster:alive:{node}` ("active" or "draining") and its info with an expiry on every
heartbeat; a node whose key has expired is dead. Its load (consultations owned) is its score in
`{p}cluster:load`, incremented by placement and corrected by the owner on each heartbeat.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from .keys import ClusterKeys


class NodeState(enum.StrEnum):
    ACTIVE = "active"
    DRAINING = "draining"


@dataclass(frozen=True)
class NodeInfo:
    node: str
    host: str
    port: int
    pid: int
    started_at: float

    def to_json(self) -> str:
        return json.dumps({"node": self.node, "host": self.host, "port": self.port, "pid": self.pid,
                           "started_at": self.started_at}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> NodeInfo:
        doc = json.loads(raw)
        return cls(str(doc["node"]), str(doc["host"]), int(doc["port"]), int(doc["pid"]),
                   float(doc["started_at"]))


@dataclass(frozen=True)
class NodeStatus:
    info: NodeInfo
    state: NodeState
    load: int


class NodeRegistry:
    def __init__(self, client: aioredis.Redis, keys: ClusterKeys, node_ttl_s: float) -> None:
        self._client = client
        self._keys = keys
        self._ttl_ms = max(1, int(node_ttl_s * 1000))

    async def beat(self, info: NodeInfo, state: NodeState, load: int) -> None:
        """One heartbeat: alive (with state), info and the true load, in one round trip."""
        k = self._keys
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(k.alive(info.node), state.value, px=self._ttl_ms)
            pipe.set(k.info(info.node), info.to_json(), px=self._ttl_ms)
            pipe.zadd(k.load, {info.node: load})
            await pipe.execute()

    async def leave(self, node: str) -> None:
        k = self._keys
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(k.alive(node), k.info(node))
            pipe.zrem(k.load, node)
            await pipe.execute()

    async def is_alive(self, node: str) -> bool:
        return bool(await self._client.exists(self._keys.alive(node)))

    async def nodes(self) -> list[NodeStatus]:
        """Every live node, by id."""
        k = self._keys
        found = []
        async for key in self._client.scan_iter(match=k.info_glob, count=500):
            raw = await self._client.get(key)
            if raw is None:
                continue
            info = NodeInfo.from_json(cast(str, raw))
            state = await self._client.get(k.alive(info.node))
            if state is None:
                continue
            load = await self._client.zscore(k.load, info.node)
            found.append(NodeStatus(info, NodeState(cast(str, state)), int(load or 0)))
        return sorted(found, key=lambda s: s.info.node)
