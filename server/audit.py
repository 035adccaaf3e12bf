"""The hash-chained, append-only audit log (DESIGN D7). Layer 3.

Each entry records who (actor id), what (action), when (ISO UTC from the injected clock),
which targets (ids) and consultation, and the outcome — ids and short codes only, never PHI,
names, e-mail addresses, tokens or secrets. `record()` refuses anything that does not look
like an id, so a careless caller cannot leak a name into a log that is kept for years.

The body is canonical JSON (sorted keys, no spaces) including the entry's `seq`; its hash is
sha256(prev_hash + body) in hex, prev_hash being the previous entry's hash ("0"*64 first).
`verify()` recomputes the chain and finds an altered body, an altered hash, and a removed or
reordered entry. The chain alone cannot notice the *last* entries being cut off; an exported
copy (or a remembered count/head hash) is the external anchor for that.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from .clock import Clock
from .store.base import AuditRecord, AuditStore
from .store.checks import GENESIS_HASH

PAGE_SIZE = 1000

# At most 40 characters: every 256-bit token (43 base64url characters, 64 hex) is refused,
# while prefixed random ids ("acc_" + 20 hex) and UUIDs (36) fit.
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
_ACTION = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A capitalised word ("Alice", "Jean-Pierre") is a name, not an id. Random ids of 8+ chars
# essentially never have this shape.
_LOOKS_LIKE_NAME = re.compile(r"[A-Z][a-z]+(?:-[A-Z][a-z]+)*")


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    count: int  # entries checked and found intact (all of them when ok)
    first_bad_seq: int | None = None
    reason: str | None = None


def _check_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value) or _LOOKS_LIKE_NAME.fullmatch(value):
        # Never echo the value: it may be exactly what must not be logged.
        raise ValueError(
            f"audit field {field!r} must be an id (1-40 characters of A-Z a-z 0-9 _ . : -,"
            " not a name, an e-mail address, a token or free text)"
        )
    return value


def entry_fields(
    action: str,
    *,
    time: str,
    actor: str | None,
    target: str | Mapping[str, str] | None,
    outcome: str,
    consultation_id: str | None,
) -> dict[str, Any]:
    """Validated entry fields (without seq). Raises ValueError naming the field, not the value."""
    if not isinstance(action, str) or len(action) > 64 or not _ACTION.fullmatch(action):
        raise ValueError("audit action must look like 'area.verb' (lowercase, dotted, <= 64)")
    if not isinstance(outcome, str) or not _CODE.fullmatch(outcome):
        raise ValueError("audit outcome must be a short lowercase code such as 'ok' or 'denied'")
    fields: dict[str, Any] = {"action": action, "outcome": outcome, "time": time}
    fields["actor"] = None if actor is None else _check_id("actor", actor)
    if consultation_id is not None:
        fields["consultation_id"] = _check_id("consultation_id", consultation_id)
    if target is not None:
        if isinstance(target, str):
            target = {"id": target}
        if not isinstance(target, Mapping) or len(target) > 8:
            raise ValueError("audit target must be an id or a mapping of at most 8 ids")
        checked: dict[str, str] = {}
        for key, value in target.items():
            if not isinstance(key, str) or not _FIELD.fullmatch(key):
                raise ValueError("audit target keys must be short lowercase names")
            checked[key] = _check_id(f"target.{key}", value)
        fields["target"] = checked
    return fields


def canonical_json(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def iso_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


class AuditLog:
    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | Mapping[str, str] | None = None,
        outcome: str = "ok",
        consultation_id: str | None = None,
    ) -> AuditRecord:
        """Append one entry. `target` is an id, or a mapping of names to ids
        ({"account": "a1"}); a bare id is stored as {"id": …}. Raises ValueError on a value
        that is not an id."""
        fields = entry_fields(
            action, time=iso_utc(self._clock.now()), actor=actor, target=target,
            outcome=outcome, consultation_id=consultation_id,
        )

        def build(head_seq: int, head_hash: str) -> AuditRecord:
            seq = head_seq + 1
            body = canonical_json({**fields, "seq": seq})
            return AuditRecord(seq=seq, prev_hash=head_hash, body=body,
                               hash=chain_hash(head_hash, body))

        return await self._store.append_audit(build)

    async def verify(self) -> AuditVerification:
        """Recompute the whole chain; report the first entry that does not hold."""
        expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
        after = 0
        while True:
            page = await self._store.audit_records(after_seq=after, limit=PAGE_SIZE)
            for record in page:
                reason = _first_problem(record, expected_seq, prev_hash)
                if reason is not None:
                    bad = expected_seq if record.seq > expected_seq else record.seq
                    return AuditVerification(False, count, bad, reason)
                count += 1
                expected_seq, prev_hash = record.seq + 1, record.hash
            if len(page) < PAGE_SIZE:
                return AuditVerification(True, count)
            after = page[-1].seq

    async def latest(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` entries, newest first, as their fields (with seq and hash): for the
        admin page. Reads the chain from the start (the store pages forward only)."""
        last: deque[AuditRecord] = deque(maxlen=max(1, limit))
        after = 0
        while True:
            page = await self._store.audit_records(after_seq=after, limit=PAGE_SIZE)
            last.extend(page)
            if len(page) < PAGE_SIZE:
                break
            after = page[-1].seq
        return [{**json.loads(r.body), "seq": r.seq, "hash": r.hash} for r in reversed(last)]

    async def export(self, out: TextIO) -> int:
        """Write every record as one JSON line (seq, prev_hash, body, hash); returns the count.
        `body` is the exact hashed text, so the export can be verified independently."""
        count, after = 0, 0
        while True:
            page = await self._store.audit_records(after_seq=after, limit=PAGE_SIZE)
            for r in page:
                out.write(canonical_json(
                    {"seq": r.seq, "prev_hash": r.prev_hash, "body": r.body, "hash": r.hash}
                ) + "\n")
                count += 1
            if len(page) < PAGE_SIZE:
                return count
            after = page[-1].seq


def _first_problem(record: AuditRecord, expected_seq: int, prev_hash: str) -> str | None:
    if record.seq > expected_seq:
        missing = (f"entry seq={expected_seq} is missing" if record.seq == expected_seq + 1
                   else f"entries seq={expected_seq}..{record.seq - 1} are missing")
        return missing
    if record.seq < expected_seq:
        return "entry is out of order"
    if record.prev_hash != prev_hash:
        return "prev_hash does not match the previous entry's hash (removed or reordered entry)"
    if chain_hash(record.prev_hash, record.body) != record.hash:
        return "hash does not match the entry (altered body or hash)"
    try:
        body = json.loads(record.body)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or body.get("seq") != record.seq:
        return "body seq does not match the entry's position (reordered entry)"
    return None


async def verify_command(store: AuditStore, clock: Clock, out: TextIO) -> int:
    """CLI `audit verify`: prints one line; exit code 0 when intact, 1 when broken."""
    result = await AuditLog(store, clock).verify()
    if result.ok:
        out.write(f"audit log intact: {result.count} entries\n")
        return 0
    out.write(f"audit log BROKEN at entry seq={result.first_bad_seq}: {result.reason}\n")
    return 1


async def export_command(store: AuditStore, clock: Clock, out: TextIO) -> int:
    """CLI `audit export`: JSON lines on `out`; exit code 0."""
    await AuditLog(store, clock).export(out)
    return 0
