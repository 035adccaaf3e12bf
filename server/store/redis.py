"""The multi-node store: Redis through redis.asyncio (DESIGN D4, D8).

Every key lives under the store's prefix:

    {p}doc:{kind}:{id}                 JSON {"doc": …, "index": {name: value}}, optional PX
    {p}docs:{kind}                     set of ids of that kind (stale members cleaned on read)
    {p}idx:{kind}:{index}:{value}      set of ids (stale members cleaned on read)
    {p}tok:{kind}:{key}                token payload JSON, PX; consumed with GETDEL
    {p}claim:{kind}:{key}              "1", SET NX PX
    {p}cnt:{key}                       INCR, PEXPIRE set by the first increment (Lua)
    {p}audit:log                       sorted set, score = seq, member = record JSON
    {p}audit:head                      JSON {"seq": n, "hash": h} of the last record

Kinds and index names cannot hold ":" (server.store.checks), so keys never collide.
Connection problems raise server.errors.Unavailable.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from ..errors import Unavailable
from .base import AuditBuilder, AuditRecord, JSONDict
from .checks import (
    GENESIS_HASH,
    check_audit_record,
    check_id,
    check_kind,
    check_seat,
    check_ttl,
    checked_document,
    dump_json,
    load_json,
)

MAX_WATCH_RETRIES = 1000

# Increment; start the window on the first increment (or repair a key that lost its TTL).
_INCR_SCRIPT = """
local v = redis.call('INCR', KEYS[1])
if v == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
"""

# Remove set members whose document is still exactly what the caller saw (missing: "").
# KEYS[1] = the set; ARGV[1] = document key prefix; then pairs (id, seen value).
_CLEAN_SCRIPT = """
local removed = 0
for i = 2, #ARGV, 2 do
  local cur = redis.call('GET', ARGV[1] .. ARGV[i])
  if (cur == false and ARGV[i + 1] == '') or cur == ARGV[i + 1] then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return removed
"""

# Take a seat: KEYS[1] = the group's sorted set (member -> expiry, ms, Redis time);
# ARGV = member, limit, ttl ms. Expired seats are dropped first; one script = atomic.
_SEAT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
local expires = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def describe_redis_url(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "a unix socket"
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname or 'localhost'}:{port}"


class RedisStore:
    """`Store` on Redis. Open with `await RedisStore.open(url, prefix)`."""

    def __init__(self, client: aioredis.Redis, prefix: str, where: str) -> None:
        self.prefix = prefix
        self._client: aioredis.Redis | None = client
        self._where = where
        self._incr = client.register_script(_INCR_SCRIPT)
        self._clean = client.register_script(_CLEAN_SCRIPT)
        self._seat = client.register_script(_SEAT_SCRIPT)
        # Appends from this process queue here; WATCH still arbitrates between nodes. Without
        # it, N concurrent appends cost O(N²) optimistic retries (measured: 47/s at N=100).
        self._append_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, prefix: str) -> RedisStore:
        """Connect and ping. Raises Unavailable (naming host:port only) when Redis is down."""
        if not prefix:
            raise ValueError("a Redis key prefix is required")
        where = describe_redis_url(url)
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5.0, socket_timeout=10.0
        )
        store = cls(client, prefix, where)
        try:
            await store.ping()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> None:
        async with self._guard() as r:
            await r.ping()

    async def delete_all_with_prefix(self) -> int:
        """Tests only: delete every key under this store's prefix (SCAN + DEL, never FLUSH)."""
        pattern = self._glob("") + "*"
        deleted = 0
        async with self._guard() as r:
            batch: list[str] = []
            async for key in r.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(await r.delete(*batch))
                    batch = []
            if batch:
                deleted += int(await r.delete(*batch))
        return deleted

    async def purge_expired(self) -> int:
        """Maintenance: drop index and kind-set members whose document has expired (reads do
        this lazily for the sets they touch). Returns how many members went."""
        removed = 0
        async with self._guard() as r:
            for space in ("docs", "idx"):
                async for set_key in r.scan_iter(match=self._glob(f"{space}:") + "*", count=500):
                    kind = set_key[len(self.prefix) + len(space) + 1:].split(":", 1)[0]
                    ids = sorted(cast(set[str], await r.smembers(set_key)))
                    if not ids:
                        continue
                    raws = await r.mget([self._doc_key(kind, i) for i in ids])
                    stale = [x for i, raw in zip(ids, raws, strict=True) if raw is None
                             for x in (i, "")]
                    if stale:
                        removed += int(await self._clean(
                            keys=[set_key], args=[self._doc_key(kind, ""), *stale]))
        return removed

    # -- documents ---------------------------------------------------------------------------

    async def put_doc(
        self,
        kind: str,
        doc_id: str,
        doc: Mapping[str, Any],
        *,
        ttl_s: float | None = None,
        index: Mapping[str, str] | None = None,
    ) -> None:
        body, entries = checked_document(kind, doc_id, doc, ttl_s, index)
        # The stored value carries the index next to the document (to clean it on replace);
        # the document's JSON text is embedded as is, not serialised a second time.
        raw = f'{{"doc":{body},"index":{dump_json(dict(entries))}}}'
        doc_key = self._doc_key(kind, doc_id)

        def write(pipe: Any) -> None:
            if ttl_s is None:
                pipe.set(doc_key, raw)
            else:
                pipe.set(doc_key, raw, px=_ms(ttl_s))
            for name, value in entries:
                pipe.sadd(self._index_key(kind, name, value), doc_id)
            pipe.sadd(self._members_key(kind), doc_id)

        await self._rewrite_doc(kind, doc_id, write)

    async def _rewrite_doc(self, kind: str, doc_id: str, write: Callable[[Any], None]) -> list[Any]:
        """In one watched transaction (retried on a concurrent change): drop the document's old
        index entries, then queue `write`; returns the transaction's results."""
        doc_key = self._doc_key(kind, doc_id)
        async with self._guard() as r, r.pipeline(transaction=True) as pipe:
            for _ in range(MAX_WATCH_RETRIES):
                try:
                    await pipe.watch(doc_key)
                    old = cast(str | None, await pipe.get(doc_key))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for name, value in _stored_index(old).items():
                        pipe.srem(self._index_key(kind, name, value), doc_id)
                    write(pipe)
                    return await pipe.execute()
                except WatchError:
                    continue
        raise Unavailable("the store is too busy")

    async def get_doc(self, kind: str, doc_id: str) -> JSONDict | None:
        check_kind(kind)
        async with self._guard() as r:
            raw = cast(str | None, await r.get(self._doc_key(kind, doc_id)))
        return None if raw is None else _stored_doc(raw)

    async def get_docs(self, kind: str, doc_ids: Sequence[str]) -> dict[str, JSONDict]:
        check_kind(kind)
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        async with self._guard() as r:
            raws = cast(list[str | None], await r.mget([self._doc_key(kind, i) for i in ids]))
        return {doc_id: _stored_doc(raw) for doc_id, raw in zip(ids, raws, strict=True) if raw is not None}

    async def delete_doc(self, kind: str, doc_id: str) -> bool:
        check_kind(kind)
        doc_key = self._doc_key(kind, doc_id)

        def remove(pipe: Any) -> None:
            pipe.srem(self._members_key(kind), doc_id)
            pipe.delete(doc_key)

        results = await self._rewrite_doc(kind, doc_id, remove)
        return int(results[-1]) > 0

    async def find_docs(self, kind: str, index_name: str, value: str) -> list[JSONDict]:
        check_kind(kind)
        check_kind(index_name, what="index name")
        return await self._docs_in_set(
            kind, self._index_key(kind, index_name, value), (index_name, value)
        )

    async def list_docs(self, kind: str) -> list[JSONDict]:
        check_kind(kind)
        return await self._docs_in_set(kind, self._members_key(kind), None)

    async def _docs_in_set(
        self, kind: str, set_key: str, must_match: tuple[str, str] | None
    ) -> list[JSONDict]:
        async with self._guard() as r:
            ids = sorted(cast(set[str], await r.smembers(set_key)))
            if not ids:
                return []
            raws = cast(list[str | None], await r.mget([self._doc_key(kind, i) for i in ids]))
            docs: list[JSONDict] = []
            stale: list[str] = []
            for doc_id, raw in zip(ids, raws, strict=True):
                if raw is None:
                    stale += [doc_id, ""]
                    continue
                stored = load_json(raw)  # parsed once: index and document
                if must_match is not None:
                    name, value = must_match
                    if _index_of(stored).get(name) != value:
                        stale += [doc_id, raw]
                        continue
                docs.append(_doc_of(stored))
            if stale:
                await self._clean(keys=[set_key], args=[self._doc_key(kind, ""), *stale])
        return docs

    # -- tokens and claims --------------------------------------------------------------------

    async def put_token(
        self, kind: str, key: str, payload: Mapping[str, Any], ttl_s: float
    ) -> None:
        check_kind(kind)
        check_id(key)
        check_ttl(ttl_s)
        raw = dump_json(payload)
        async with self._guard() as r:
            await r.set(self._key("tok", kind, key), raw, px=_ms(ttl_s))

    async def peek_token(self, kind: str, key: str) -> JSONDict | None:
        check_kind(kind)
        async with self._guard() as r:
            raw = cast(str | None, await r.get(self._key("tok", kind, key)))
        return None if raw is None else load_json(raw)

    async def consume_token(self, kind: str, key: str) -> JSONDict | None:
        check_kind(kind)
        async with self._guard() as r:
            raw = await r.getdel(self._key("tok", kind, key))
        return None if raw is None else load_json(cast(str, raw))

    async def delete_token(self, kind: str, key: str) -> bool:
        check_kind(kind)
        async with self._guard() as r:
            return int(await r.delete(self._key("tok", kind, key))) > 0

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        check_kind(kind)
        check_id(key)
        check_ttl(ttl_s)
        async with self._guard() as r:
            return bool(await r.set(self._key("claim", kind, key), "1", nx=True, px=_ms(ttl_s)))

    # -- seats ----------------------------------------------------------------------------------

    async def take_seat(self, kind: str, group: str, member: str, limit: int, ttl_s: float) -> bool:
        check_seat(kind, group, member, limit, ttl_s)
        async with self._guard():
            taken = await self._seat(keys=[self._key("seat", kind, group)], args=[member, limit, _ms(ttl_s)])
        return bool(int(taken))

    async def release_seat(self, kind: str, group: str, member: str) -> bool:
        check_seat(kind, group, member, 1, 1.0)
        async with self._guard() as r:
            return int(await r.zrem(self._key("seat", kind, group), member)) > 0

    async def seat_holders(self, kind: str, group: str) -> set[str]:
        check_kind(kind)
        check_id(group)
        async with self._guard() as r:
            now_s, now_us = await r.time()
            now_ms = int(now_s) * 1000 + int(now_us) // 1000
            members = await r.zrangebyscore(self._key("seat", kind, group), f"({now_ms}", "+inf")
        return {str(m) for m in members}

    # -- counters -------------------------------------------------------------------------------

    async def incr(self, key: str, ttl_s: float) -> int:
        check_id(key)
        check_ttl(ttl_s)
        async with self._guard():
            return int(await self._incr(keys=[self._counter_key(key)], args=[_ms(ttl_s)]))

    async def get_count(self, key: str) -> int:
        async with self._guard() as r:
            raw = await r.get(self._counter_key(key))
        return 0 if raw is None else int(raw)

    async def reset_count(self, key: str) -> None:
        async with self._guard() as r:
            await r.delete(self._counter_key(key))

    # -- audit ----------------------------------------------------------------------------------

    async def append_audit(self, build: AuditBuilder) -> AuditRecord:
        head_key, log_key = self.prefix + "audit:head", self.prefix + "audit:log"
        async with self._append_lock, self._guard() as r, r.pipeline(transaction=True) as pipe:
            for _ in range(MAX_WATCH_RETRIES):
                try:
                    await pipe.watch(head_key)
                    head = cast(str | None, await pipe.get(head_key))
                    if head is None:
                        head_seq, head_hash = 0, GENESIS_HASH
                    else:
                        parsed = load_json(head)
                        head_seq, head_hash = int(parsed["seq"]), str(parsed["hash"])
                    record = build(head_seq, head_hash)
                    check_audit_record(record, head_seq, head_hash)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.zadd(log_key, {_record_json(record): record.seq})
                    pipe.set(head_key, dump_json({"seq": record.seq, "hash": record.hash}))
                    await pipe.execute()
                    return record
                except WatchError:
                    continue
        raise Unavailable("the store is too busy")

    async def audit_records(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self._guard() as r:
            raws = cast(
                list[str],
                await r.zrangebyscore(
                    self.prefix + "audit:log", f"({after_seq}", "+inf", start=0, num=limit
                ),
            )
        return [_parse_record(raw) for raw in raws]

    # -- internals ----------------------------------------------------------------------------

    def _glob(self, suffix: str) -> str:
        """The prefix + suffix as a SCAN pattern, glob characters escaped."""
        return re.sub(r"([\[\]*?\\])", r"\\\1", self.prefix + suffix)

    def _key(self, space: str, kind: str, key: str) -> str:
        return f"{self.prefix}{space}:{kind}:{key}"

    def _doc_key(self, kind: str, doc_id: str) -> str:
        return self._key("doc", kind, doc_id)

    def _members_key(self, kind: str) -> str:
        return f"{self.prefix}docs:{kind}"

    def _index_key(self, kind: str, name: str, value: str) -> str:
        return f"{self.prefix}idx:{kind}:{name}:{value}"

    def _counter_key(self, key: str) -> str:
        return f"{self.prefix}cnt:{key}"

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[aioredis.Redis]:
        client = self._client
        if client is None:
            raise Unavailable("the store is closed")
        try:
            yield client
        except _UNAVAILABLE as exc:
            raise Unavailable(f"Redis at {self._where} does not answer") from exc


def _ms(ttl_s: float) -> int:
    return max(1, math.ceil(ttl_s * 1000))


def _stored_index(raw: str | None) -> dict[str, str]:
    return {} if raw is None else _index_of(load_json(raw))


def _stored_doc(raw: str) -> JSONDict:
    return _doc_of(load_json(raw))


def _index_of(stored: JSONDict) -> dict[str, str]:
    index = stored.get("index") or {}
    return {str(k): str(v) for k, v in index.items()}


def _doc_of(stored: JSONDict) -> JSONDict:
    doc = stored.get("doc")
    if not isinstance(doc, dict):
        raise ValueError("stored document is not a JSON object")
    return doc


def _record_json(record: AuditRecord) -> str:
    return json.dumps(
        {"seq": record.seq, "prev_hash": record.prev_hash, "body": record.body,
         "hash": record.hash},
        separators=(",", ":"), ensure_ascii=False, sort_keys=True,
    )


def _parse_record(raw: str) -> AuditRecord:
    d = load_json(raw)
    return AuditRecord(
        seq=int(d["seq"]), prev_hash=str(d["prev_hash"]), body=str(d["body"]), hash=str(d["hash"])
    )
