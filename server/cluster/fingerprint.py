"""The key material every node must share (the app secret and the key-encryption keys), checked
at start without putting it in Redis: each node publishes HMAC-SHA256(app secret, KEK ids and
SHA-256 of each KEK) under `{p}cluster:fingerprint`. The first live node sets it; a node whose
fingerprint differs refuses to start with one line. Live nodes refresh its expiry, so once
every node has stopped (e.g. to roll out a rotated KEK everywhere) the next start sets it anew.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import cast

import redis.asyncio as aioredis

from ..errors import ConfigError
from .keys import ClusterKeys

FINGERPRINT_TTL_FACTOR = 3  # the record outlives the last node by three node TTLs


def key_fingerprint(app_secret: bytes, keks: Iterable[tuple[str, bytes]]) -> str:
    mac = hmac.new(app_secret, b"teleconsult cluster key fingerprint v1\n", hashlib.sha256)
    for kek_id, key in sorted(keks):
        mac.update(kek_id.encode() + b"=" + hashlib.sha256(key).digest() + b"\n")
    return mac.hexdigest()[:32]


async def check_fingerprint(client: aioredis.Redis, keys: ClusterKeys, mine: str, ttl_s: float) -> None:
    """Set the cluster's fingerprint if none, else compare. Raises ConfigError on a mismatch."""
    ttl_ms = max(1, int(ttl_s * 1000 * FINGERPRINT_TTL_FACTOR))
    await client.set(keys.fingerprint, mine, nx=True, px=ttl_ms)
    theirs = cast("str | None", await client.get(keys.fingerprint))
    if theirs is not None and not hmac.compare_digest(theirs, mine):
        raise ConfigError(
            "this node's key material (app_secret.key, kek.json) differs from the cluster's: "
            "copy both files from a running node"
        )


_REFRESH_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


async def refresh_fingerprint(client: aioredis.Redis, keys: ClusterKeys, mine: str, ttl_s: float) -> bool:
    """Keep the record alive while we run; False if another fingerprint holds it."""
    ttl_ms = max(1, int(ttl_s * 1000 * FINGERPRINT_TTL_FACTOR))
    result = await client.eval(_REFRESH_SCRIPT, 1, keys.fingerprint, mine, ttl_ms)
    return bool(result)
