"""server/audit.py: the hash chain, its verification on both backends, and the id-only rule."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import secrets
import sqlite3
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.audit import AuditLog, chain_hash, export_command, verify_command
from server.clock import ManualClock
from server.store.base import Store
from server.store.redis import RedisStore
from server.store.sqlite import SQLiteStore


async def write_entries(log: AuditLog, n: int) -> None:
    for i in range(n):
        await log.record("auth.login", actor=f"acc-{i}", target={"session": f"s-{i}"})


async def test_record_writes_the_fields_and_chains(store: Store, clock: ManualClock) -> None:
    log = AuditLog(store, clock)
    first = await log.record("auth.login", actor="acc-1", outcome="denied")
    clock.advance(1.5)
    second = await log.record(
        "consultation.create", actor="acc-1", target="c-42", consultation_id="c-42"
    )
    assert json.loads(first.body) == {
        "action": "auth.login", "actor": "acc-1", "outcome": "denied", "seq": 1,
        "time": "2027-01-15T08:00:00.000Z",
    }
    body = json.loads(second.body)
    assert body["time"] == "2027-01-15T08:00:01.500Z"
    assert body["target"] == {"id": "c-42"} and body["consultation_id"] == "c-42"
    assert second.prev_hash == first.hash == chain_hash("0" * 64, first.body)
    assert second.body == json.dumps(body, sort_keys=True, separators=(",", ":"))


async def test_verify_passes_on_an_intact_log(store: Store, clock: ManualClock) -> None:
    log = AuditLog(store, clock)
    assert (await log.verify()).ok
    await write_entries(log, 5)
    result = await log.verify()
    assert (result.ok, result.count, result.first_bad_seq) == (True, 5, None)
    out = io.StringIO()
    assert await verify_command(store, clock, out) == 0
    assert out.getvalue() == "audit log intact: 5 entries\n"


async def test_concurrent_records_verify(store: Store, clock: ManualClock) -> None:
    log = AuditLog(store, clock)
    await asyncio.gather(*(log.record("test.append", actor=f"a{i}") for i in range(20)))
    assert (await log.verify()).count == 20


async def test_export_writes_verifiable_json_lines(store: Store, clock: ManualClock) -> None:
    await write_entries(AuditLog(store, clock), 3)
    out = io.StringIO()
    assert await export_command(store, clock, out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    prev = "0" * 64
    for line in lines:
        assert line["prev_hash"] == prev and line["hash"] == chain_hash(prev, line["body"])
        prev = line["hash"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actor": "Jean Dupont"},
        {"actor": "Alice"},
        {"actor": "jean.dupont@example.org"},
        {"actor": "a1", "target": {"patient": "Marie-Claire"}},
        {"actor": "a1", "target": "consultation with Dr Who"},
        {"actor": "a1", "consultation_id": "x" * 41},
        {"actor": "a1", "target": {"invite": secrets.token_urlsafe(32)}},  # a 256-bit token
        {"actor": "a1", "target": {"invite": hashlib.sha256(b"t").hexdigest()}},  # its hash
        {"actor": "a1", "outcome": "Refused because the password was hunter2"},
        {"actor": "a1", "target": {"Bad Key": "x1"}},
    ],
)
async def test_record_refuses_values_that_are_not_ids(
    store: Store, clock: ManualClock, kwargs: dict[str, object]
) -> None:
    log = AuditLog(store, clock)
    with pytest.raises(ValueError, match="audit") as caught:
        await log.record("auth.login", **kwargs)  # type: ignore[arg-type]
    for value in kwargs.values():
        for text in value.values() if isinstance(value, dict) else [value]:
            if isinstance(text, str) and text != "a1":
                assert text not in str(caught.value)  # the refused value is never echoed
    assert await store.audit_records() == []


@pytest.mark.parametrize("action", ["login", "Auth.Login", "auth login", "auth.", ""])
async def test_record_refuses_a_malformed_action(store: Store, clock: ManualClock,
                                                 action: str) -> None:
    with pytest.raises(ValueError, match="action"):
        await AuditLog(store, clock).record(action, actor="a1")


# -- tampering, SQLite: edit the closed database file directly ------------------------------


async def _sqlite_log(path: Path, clock: ManualClock, n: int) -> None:
    store = await SQLiteStore.open(path)
    try:
        await write_entries(AuditLog(store, clock), n)
    finally:
        await store.close()


async def _verify_sqlite(path: Path, clock: ManualClock) -> tuple[int, str]:
    store = await SQLiteStore.open(path)
    try:
        out = io.StringIO()
        code = await verify_command(store, clock, out)
        return code, out.getvalue()
    finally:
        await store.close()


def _tamper(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


async def _verify_tampered(tmp_path: Path, clock: ManualClock, sql: str, *params: object) -> tuple[int, str]:
    """Five entries in a SQLite audit log, one statement of tampering, then `verify`."""
    path = tmp_path / "db" / "audit.sqlite3"
    await _sqlite_log(path, clock, 5)
    _tamper(path, sql, *params)
    return await _verify_sqlite(path, clock)


async def test_sqlite_altered_body_is_named(tmp_path: Path, clock: ManualClock) -> None:
    code, text = await _verify_tampered(
        tmp_path, clock, "UPDATE audit SET body = replace(body, 'acc-2', 'acc-9') WHERE seq = 3")
    assert code == 1
    assert text.startswith("audit log BROKEN at entry seq=3: hash does not match")


async def test_sqlite_altered_hash_is_named(tmp_path: Path, clock: ManualClock) -> None:
    code, text = await _verify_tampered(tmp_path, clock, "UPDATE audit SET hash = ? WHERE seq = 4", "f" * 64)
    assert (code, text.split(":")[0]) == (1, "audit log BROKEN at entry seq=4")


async def test_sqlite_removed_entry_is_named(tmp_path: Path, clock: ManualClock) -> None:
    code, text = await _verify_tampered(tmp_path, clock, "DELETE FROM audit WHERE seq = 2")
    assert code == 1
    assert text == "audit log BROKEN at entry seq=2: entry seq=2 is missing\n"


async def test_sqlite_reordered_entries_are_detected(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "db" / "audit.sqlite3"
    await _sqlite_log(path, clock, 5)
    _tamper(path, "UPDATE audit SET seq = -seq WHERE seq IN (2, 3)")
    _tamper(path, "UPDATE audit SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE seq < 0")
    code, text = await _verify_sqlite(path, clock)
    assert (code, text.split(":")[0]) == (1, "audit log BROKEN at entry seq=2")


# -- tampering, Redis: rewrite the stored record ----------------------------------------------


async def test_redis_rewritten_record_is_named(redis_store: RedisStore, redis_url: str,
                                               clock: ManualClock) -> None:
    await write_entries(AuditLog(redis_store, clock), 4)
    log_key = redis_store.prefix + "audit:log"
    raw = Redis.from_url(redis_url, decode_responses=True)
    try:
        member = str((await raw.zrangebyscore(log_key, 3, 3))[0])
        record = json.loads(member)
        record["body"] = record["body"].replace("acc-2", "acc-7")
        async with raw.pipeline(transaction=True) as pipe:
            pipe.zrem(log_key, member)
            pipe.zadd(log_key, {json.dumps(record): 3})
            await pipe.execute()
    finally:
        await raw.aclose()
    out = io.StringIO()
    assert await verify_command(redis_store, clock, out) == 1
    assert out.getvalue().startswith("audit log BROKEN at entry seq=3: hash does not match")


async def test_redis_removed_record_is_named(redis_store: RedisStore, redis_url: str,
                                             clock: ManualClock) -> None:
    await write_entries(AuditLog(redis_store, clock), 4)
    raw = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await raw.zremrangebyscore(redis_store.prefix + "audit:log", 2, 2) == 1
    finally:
        await raw.aclose()
    result = await AuditLog(redis_store, clock).verify()
    assert (result.ok, result.first_bad_seq, result.count) == (False, 2, 1)
