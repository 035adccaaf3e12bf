"""A Store that times every operation of the Store it wraps (teleconsult_store_operation_seconds).

`open_store` wraps whichever backend it opened, so both backends are measured the same way.
Labels are the operation names only (never kinds, keys or ids).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from .. import metrics
from .base import AuditBuilder, AuditRecord, JSONDict, Store

T = TypeVar("T")

_OPERATIONS = ("ping", "put_doc", "get_doc", "get_docs", "delete_doc", "find_docs", "list_docs", "put_token",
               "peek_token", "consume_token", "delete_token", "claim", "incr", "get_count",
               "reset_count", "take_seat", "release_seat", "seat_holders", "append_audit",
               "audit_records")
_HISTOGRAMS = {op: metrics.STORE_SECONDS.labels(operation=op) for op in _OPERATIONS}


async def _timed(operation: str, call: Awaitable[T]) -> T:
    started = time.perf_counter()
    try:
        return await call
    except Exception:
        metrics.STORE_ERRORS.labels(operation=operation).inc()
        raise
    finally:
        _HISTOGRAMS[operation].observe(time.perf_counter() - started)


class TimedStore:
    """Delegates every Store method to `inner`, observing its latency."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    async def ping(self) -> None:
        await _timed("ping", self.inner.ping())

    async def close(self) -> None:
        await self.inner.close()

    async def put_doc(self, kind: str, doc_id: str, doc: Mapping[str, Any], *,
                      ttl_s: float | None = None, index: Mapping[str, str] | None = None) -> None:
        await _timed("put_doc", self.inner.put_doc(kind, doc_id, doc, ttl_s=ttl_s, index=index))

    async def get_doc(self, kind: str, doc_id: str) -> JSONDict | None:
        return await _timed("get_doc", self.inner.get_doc(kind, doc_id))

    async def get_docs(self, kind: str, doc_ids: Sequence[str]) -> dict[str, JSONDict]:
        return await _timed("get_docs", self.inner.get_docs(kind, doc_ids))

    async def delete_doc(self, kind: str, doc_id: str) -> bool:
        return await _timed("delete_doc", self.inner.delete_doc(kind, doc_id))

    async def find_docs(self, kind: str, index_name: str, value: str) -> list[JSONDict]:
        return await _timed("find_docs", self.inner.find_docs(kind, index_name, value))

    async def list_docs(self, kind: str) -> list[JSONDict]:
        return await _timed("list_docs", self.inner.list_docs(kind))

    async def put_token(self, kind: str, key: str, payload: Mapping[str, Any], ttl_s: float) -> None:
        await _timed("put_token", self.inner.put_token(kind, key, payload, ttl_s))

    async def peek_token(self, kind: str, key: str) -> JSONDict | None:
        return await _timed("peek_token", self.inner.peek_token(kind, key))

    async def consume_token(self, kind: str, key: str) -> JSONDict | None:
        return await _timed("consume_token", self.inner.consume_token(kind, key))

    async def delete_token(self, kind: str, key: str) -> bool:
        return await _timed("delete_token", self.inner.delete_token(kind, key))

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        return await _timed("claim", self.inner.claim(kind, key, ttl_s))

    async def incr(self, key: str, ttl_s: float) -> int:
        return await _timed("incr", self.inner.incr(key, ttl_s))

    async def get_count(self, key: str) -> int:
        return await _timed("get_count", self.inner.get_count(key))

    async def reset_count(self, key: str) -> None:
        await _timed("reset_count", self.inner.reset_count(key))

    async def take_seat(self, kind: str, group: str, member: str, limit: int, ttl_s: float) -> bool:
        return await _timed("take_seat", self.inner.take_seat(kind, group, member, limit, ttl_s))

    async def release_seat(self, kind: str, group: str, member: str) -> bool:
        return await _timed("release_seat", self.inner.release_seat(kind, group, member))

    async def seat_holders(self, kind: str, group: str) -> set[str]:
        return await _timed("seat_holders", self.inner.seat_holders(kind, group))

    async def append_audit(self, build: AuditBuilder) -> AuditRecord:
        return await _timed("append_audit", self.inner.append_audit(build))

    async def audit_records(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        return await _timed("audit_records", self.inner.audit_records(after_seq, limit))
