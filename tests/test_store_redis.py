"""What only the Redis backend promises: every key under the prefix, stale index members
cleaned on read, counters carrying their window as a Redis TTL."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.store.base import AuditRecord
from server.store.redis import RedisStore
from tests.helpers.waiting import wait_for_condition


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    async with Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


async def prefixed_keys(raw: Redis, prefix: str) -> set[str]:
    return {k async for k in raw.scan_iter(match=prefix + "*")}


async def test_every_key_is_under_the_prefix(redis_store: RedisStore, raw: Redis) -> None:
    p = redis_store.prefix
    await redis_store.put_doc("account", "a1", {}, index={"email": "x@example.org"})
    await redis_store.put_token("invite", "h1", {}, ttl_s=60)
    await redis_store.claim("totp", "a1:1", ttl_s=60)
    await redis_store.incr("login:a1", ttl_s=60)
    await redis_store.append_audit(lambda seq, h: AuditRecord(seq + 1, h, "{}", "a" * 64))
    assert await prefixed_keys(raw, p) == {
        f"{p}doc:account:a1", f"{p}docs:account", f"{p}idx:account:email:x@example.org",
        f"{p}tok:invite:h1", f"{p}claim:totp:a1:1", f"{p}cnt:login:a1",
        f"{p}audit:log", f"{p}audit:head",
    }
    assert 0 < await raw.pttl(f"{p}cnt:login:a1") <= 60_000
    assert await redis_store.delete_all_with_prefix() == 8
    assert await prefixed_keys(raw, p) == set()


async def _s1_expired_s2_live(redis_store: RedisStore, raw: Redis) -> str:
    """Sessions s1 (0.2 s TTL) and s2, both indexed under account a1; returns the key prefix once
    Redis has expired s1 (its members in docs:session and the index set stay behind)."""
    p = redis_store.prefix
    await redis_store.put_doc("session", "s1", {}, ttl_s=0.2, index={"account": "a1"})
    await redis_store.put_doc("session", "s2", {}, index={"account": "a1"})

    async def expired() -> bool:
        return not await raw.exists(f"{p}doc:session:s1")

    await wait_for_condition(expired, timeout_s=5, what="Redis to expire the document")
    return p


async def test_stale_index_members_are_removed_on_read(redis_store: RedisStore,
                                                       raw: Redis) -> None:
    p = await _s1_expired_s2_live(redis_store, raw)
    assert await raw.smembers(f"{p}idx:session:account:a1") == {"s1", "s2"}
    assert await redis_store.find_docs("session", "account", "a1") == [{}]
    assert await raw.smembers(f"{p}idx:session:account:a1") == {"s2"}
    assert await redis_store.list_docs("session") == [{}]
    assert await raw.smembers(f"{p}docs:session") == {"s2"}


async def test_purge_expired_drops_members_of_expired_documents(redis_store: RedisStore,
                                                                raw: Redis) -> None:
    p = await _s1_expired_s2_live(redis_store, raw)
    assert await redis_store.purge_expired() == 2  # from docs:session and the index set
    assert await raw.smembers(f"{p}docs:session") == {"s2"}
    assert await raw.smembers(f"{p}idx:session:account:a1") == {"s2"}
    assert await redis_store.purge_expired() == 0


async def test_appends_from_two_nodes_interleave_into_one_gapless_chain(
    redis_store: RedisStore, redis_url: str
) -> None:
    """Two stores on one prefix are two nodes: only WATCH/MULTI keeps their appends apart."""
    def build(head_seq: int, head_hash: str) -> AuditRecord:
        body = f'{{"seq":{head_seq + 1}}}'
        digest = hashlib.sha256((head_hash + body).encode()).hexdigest()
        return AuditRecord(head_seq + 1, head_hash, body, digest)

    other = await RedisStore.open(redis_url, redis_store.prefix)
    try:
        await asyncio.gather(*(s.append_audit(build) for _ in range(10)
                               for s in (redis_store, other)))
    finally:
        await other.close()
    records = await redis_store.audit_records()
    assert [r.seq for r in records] == list(range(1, 21))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
