"""Argument checks and JSON handling shared by both store backends, so they refuse the same
bad input with the same clear error."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .base import AuditRecord, JSONDict

GENESIS_HASH = "0" * 64
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_kind(value: str, *, what: str = "kind") -> None:
    """Kinds and index names are short fixed identifiers (they become part of Redis keys)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} must be 1-64 characters of A-Z a-z 0-9 _ . -")


def check_id(value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError("an id or key must be a non-empty string")
    if len(value) > 512:
        raise ValueError("an id or key must be at most 512 characters")


def check_ttl(ttl_s: float) -> None:
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, int | float)
        or not math.isfinite(ttl_s)
        or ttl_s <= 0
    ):
        raise ValueError("ttl_s must be a positive, finite number of seconds")


def index_entries(index: Mapping[str, str] | None) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for name, value in (index or {}).items():
        check_kind(name, what="index name")
        if not isinstance(value, str):
            raise ValueError(f"index {name!r} needs a string value")
        entries.append((name, value))
    return entries


def dump_json(value: Mapping[str, Any]) -> str:
    if not isinstance(value, Mapping):
        raise TypeError("a document or payload must be a mapping (a JSON object)")
    try:
        return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a document or payload must be JSON-serialisable: {exc}") from None


def checked_document(
    kind: str, doc_id: str, doc: Mapping[str, Any], ttl_s: float | None, index: Mapping[str, str] | None
) -> tuple[str, list[tuple[str, str]]]:
    """Validate put_doc's arguments (both backends refuse the same input the same way);
    returns the document's JSON text and its index entries."""
    check_kind(kind)
    check_id(doc_id)
    if ttl_s is not None:
        check_ttl(ttl_s)
    entries = index_entries(index)
    return dump_json(doc), entries


def load_json(text: str) -> JSONDict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored value is not a JSON object")
    return value


def check_audit_record(record: AuditRecord, head_seq: int, head_hash: str) -> None:
    """What a builder returned must extend the chain head exactly."""
    if not isinstance(record, AuditRecord):
        raise TypeError("an audit builder must return an AuditRecord")
    if record.seq != head_seq + 1:
        raise ValueError(f"audit record seq {record.seq} does not follow head {head_seq}")
    if record.prev_hash != head_hash:
        raise ValueError("audit record prev_hash is not the head's hash")
    if not _HEX64.fullmatch(record.hash):
        raise ValueError("audit record hash must be 64 lowercase hex digits")
    if not isinstance(record.body, str) or not record.body:
        raise ValueError("audit record body must be a non-empty string")


def check_seat(kind: str, group: str, member: str, limit: int, ttl_s: float) -> None:
    check_kind(kind)
    check_id(group)
    check_id(member)
    check_ttl(ttl_s)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError("limit must be a non-negative whole number")
