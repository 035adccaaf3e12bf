"""Consultation leases: who owns a consultation, with an epoch as fencing token.

A lease is `{p}cluster:lease:{cid}` = "{node}:{epoch}" with an expiry the owner renews on each
heartbeat. `place` returns the current lease when its node is alive, else gives the
consultation to the least-loaded active node (the lowest score in `{p}cluster:load`; dead nodes
are dropped from it on the way) with a new epoch (INCR) — in one Lua script, so two nodes
placing at once agree and the spread stays even. `renew` keeps a lease whose value is still
ours; `release` gives it back. A node that finds its lease taken by a newer epoch has been
fenced: it must stop serving that consultation (node.py closes its room and sockets).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from .keys import ClusterKeys

# KEYS: lease, epoch, load. ARGV: alive key prefix, lease ttl ms.
_PLACE_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner = string.match(cur, '^(.*):%d+$')
  if owner and redis.call('EXISTS', ARGV[1] .. owner) == 1 then return cur end
end
local members = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
local best = nil
for i = 1, #members, 2 do
  local state = redis.call('GET', ARGV[1] .. members[i])
  if not state then
    redis.call('ZREM', KEYS[3], members[i])
  elseif state == 'active' and best == nil then
    best = members[i]
  end
end
if not best then return false end
local epoch = redis.call('INCR', KEYS[2])
local value = best .. ':' .. epoch
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('ZINCRBY', KEYS[3], 1, best)
return value
"""

# KEYS: lease, epoch. ARGV: our value, lease ttl ms, our epoch.
# 1 renewed; 2 re-taken (it had lapsed, e.g. Redis was away, and no newer epoch exists); 0 lost.
_RENEW_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

# KEYS: lease, load. ARGV: our value, our node.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('ZSCORE', KEYS[2], ARGV[2]) then redis.call('ZINCRBY', KEYS[2], -1, ARGV[2]) end
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Lease:
    consultation_id: str
    node: str
    epoch: int

    @property
    def value(self) -> str:
        return f"{self.node}:{self.epoch}"

    @classmethod
    def parse(cls, cid: str, value: str) -> Lease:
        node, _, epoch = value.rpartition(":")
        return cls(cid, node, int(epoch))


class Renewal(enum.Enum):
    RENEWED = 1
    RETAKEN = 2
    LOST = 0


class NoNodeAvailable(Exception):
    """No active node can take a consultation (all draining or dead)."""


class Placement:
    def __init__(self, client: aioredis.Redis, keys: ClusterKeys, lease_ttl_s: float) -> None:
        self._client = client
        self._keys = keys
        self._ttl_ms = max(1, int(lease_ttl_s * 1000))
        self._place = client.register_script(_PLACE_SCRIPT)
        self._renew = client.register_script(_RENEW_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    async def place(self, cid: str) -> Lease:
        """The consultation's lease: the current one if its owner lives, else a new one on the
        least-loaded active node. Raises NoNodeAvailable; redis errors pass through."""
        k = self._keys
        value = await self._place(keys=[k.lease(cid), k.epoch(cid), k.load],
                                  args=[k.alive_prefix, self._ttl_ms])
        if not value:
            raise NoNodeAvailable("no node can take a consultation now")
        return Lease.parse(cid, cast(str, value))

    async def current(self, cid: str) -> Lease | None:
        value = await self._client.get(self._keys.lease(cid))
        return None if value is None else Lease.parse(cid, cast(str, value))

    async def renew(self, lease: Lease) -> Renewal:
        k = self._keys
        result = await self._renew(keys=[k.lease(lease.consultation_id), k.epoch(lease.consultation_id)],
                                   args=[lease.value, self._ttl_ms, str(lease.epoch)])
        return Renewal(int(cast(int, result)))

    async def release(self, lease: Lease) -> bool:
        k = self._keys
        result = await self._release(keys=[k.lease(lease.consultation_id), k.load],
                                     args=[lease.value, lease.node])
        return bool(result)

    async def leases(self) -> list[Lease]:
        """Every current lease (for `node list` and tests; SCAN, not for the hot path)."""
        found = []
        head = len(self._keys.lease(""))
        async for key in self._client.scan_iter(match=self._keys.lease_glob, count=500):
            value = await self._client.get(key)
            if value is not None:
                found.append(Lease.parse(cast(str, key)[head:], cast(str, value)))
        return found
