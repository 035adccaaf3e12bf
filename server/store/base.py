"""What the features need from storage, as protocols (DESIGN D4).

Backends implement four small primitives; typed repositories (accounts, sessions, invites, …)
live in layer 3 on top of them, so a new feature needs no change in either backend.

- documents: JSON objects by (kind, id), with optional secondary indexes and optional expiry;
- tokens: one-time items by (kind, key), consumed atomically (exactly one consumer wins), and
  `claim`, an atomic "first one wins" marker (TOTP replay, idempotency);
- counters: integers with a window (rate limits);
- seats: bounded groups of members (a consultation's seats), taken atomically: of N concurrent
  takers of the last free seat exactly one wins;
- audit: an append-only, hash-chained log whose append is atomic with respect to the chain head.

Expiry is enforced by the backend in real time (Redis TTL; SQLite compares to its own clock).
Services that must step time in tests (sessions, TOTP) also keep `expires_at` inside the
document and check it against the injected clock.

All methods are coroutines; none blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry as stored: `body` is the canonical JSON text the hash covers."""

    seq: int  # 1, 2, 3, … without gaps
    prev_hash: str  # hex; "0" * 64 for the first entry
    body: str  # canonical JSON (sorted keys, no spaces) of the entry fields
    hash: str  # hex sha256 over prev_hash + body (computed by layer 3, see server/audit.py)


# Called by the backend, inside its atomic section, with the current head (seq of the last
# entry or 0, and its hash or "0"*64); returns the record to store, whose seq must be head+1.
AuditBuilder = Callable[[int, str], AuditRecord]


class DocumentStore(Protocol):
    async def put_doc(
        self,
        kind: str,
        doc_id: str,
        doc: Mapping[str, Any],
        *,
        ttl_s: float | None = None,
        index: Mapping[str, str] | None = None,
    ) -> None:
        """Create or replace. `index` maps index name -> value, for find_docs. Replacing a
        document replaces its index entries and its expiry."""
        ...

    async def get_doc(self, kind: str, doc_id: str) -> JSONDict | None: ...

    async def get_docs(self, kind: str, doc_ids: Sequence[str]) -> dict[str, JSONDict]:
        """The live documents among `doc_ids`, by id (absent ones left out), in one round trip:
        for periodic checks of many documents (the open sockets' staff sessions)."""
        ...

    async def delete_doc(self, kind: str, doc_id: str) -> bool:
        """True when something was deleted."""
        ...

    async def find_docs(self, kind: str, index_name: str, value: str) -> list[JSONDict]:
        """Live documents whose index `index_name` equals `value` (any order)."""
        ...

    async def list_docs(self, kind: str) -> list[JSONDict]:
        """All live documents of a kind (any order). For admin listings, not hot paths."""
        ...


class TokenStore(Protocol):
    async def put_token(self, kind: str, key: str, payload: Mapping[str, Any], ttl_s: float) -> None: ...

    async def peek_token(self, kind: str, key: str) -> JSONDict | None: ...

    async def consume_token(self, kind: str, key: str) -> JSONDict | None:
        """Atomically return and delete. Of N concurrent consumers exactly one gets the payload."""
        ...

    async def delete_token(self, kind: str, key: str) -> bool: ...

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        """Atomically mark (kind, key) as taken for ttl_s. True only for the first claimer."""
        ...


class CounterStore(Protocol):
    async def incr(self, key: str, ttl_s: float) -> int:
        """Add one and return the new value. The window (ttl) starts at the first increment."""
        ...

    async def get_count(self, key: str) -> int: ...

    async def reset_count(self, key: str) -> None: ...


class SeatStore(Protocol):
    async def take_seat(self, kind: str, group: str, member: str, limit: int, ttl_s: float) -> bool:
        """Atomically: if `member` holds a seat of `group`, keep it (renew its expiry) → True;
        else if fewer than `limit` live seats are taken, take one → True; else False."""
        ...

    async def release_seat(self, kind: str, group: str, member: str) -> bool:
        """Free the member's seat; True when it held one."""
        ...

    async def seat_holders(self, kind: str, group: str) -> set[str]: ...


class AuditStore(Protocol):
    async def append_audit(self, build: AuditBuilder) -> AuditRecord:
        """Append atomically: no two records ever share a seq or a prev_hash."""
        ...

    async def audit_records(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Records with seq > after_seq, in seq order, at most `limit`."""
        ...


class Store(DocumentStore, TokenStore, CounterStore, SeatStore, AuditStore, Protocol):
    async def ping(self) -> None:
        """Raise server.errors.Unavailable when the backend does not answer."""
        ...

    async def close(self) -> None:
        """Idempotent."""
        ...
