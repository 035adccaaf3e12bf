"""What only the embedded backend promises: durability, file modes, schema, purge, locking."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path

import pytest

from server.store.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.helpers.waiting import wait_for_condition


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "teleconsult.sqlite3"
    store = await SQLiteStore.open(path)
    await store.put_doc("account", "a1", {"id": "a1"}, index={"email": "x@example.org"})
    await store.put_token("invite", "h1", {"c": "c1"}, ttl_s=3600)
    await store.incr("login:a1", ttl_s=3600)
    await store.claim("totp", "a1:1", ttl_s=3600)
    await store.close()

    store = await SQLiteStore.open(path)
    try:
        assert await store.find_docs("account", "email", "x@example.org") == [{"id": "a1"}]
        assert await store.consume_token("invite", "h1") == {"c": "c1"}
        assert await store.get_count("login:a1") == 1
        assert await store.claim("totp", "a1:1", ttl_s=3600) is False
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()


async def test_directory_is_0700_and_files_0600(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "teleconsult.sqlite3"
    store = await SQLiteStore.open(path)
    try:
        await store.put_doc("account", "a1", {})
        assert mode(path.parent) == 0o700
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert path.with_name(path.name + "-wal") in files
        for f in files:
            assert mode(f) == 0o600, f.name
    finally:
        await store.close()


async def test_an_existing_loose_directory_is_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    store = await SQLiteStore.open(loose / "db.sqlite3")
    await store.close()
    assert mode(loose) == 0o700


async def test_wal_mode_and_reopen_does_not_remigrate(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await (await SQLiteStore.open(path)).close()
    await (await SQLiteStore.open(path)).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        conn.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await (await SQLiteStore.open(path)).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer than this server"):
        await SQLiteStore.open(path)


async def test_purge_physically_deletes_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = await SQLiteStore.open(path)
    try:
        await store.put_doc("session", "gone", {}, ttl_s=0.2, index={"account": "a1"})
        await store.put_doc("session", "kept", {}, index={"account": "a1"})
        await store.put_token("invite", "gone", {}, ttl_s=0.2)
        await store.claim("totp", "gone", ttl_s=0.2)
        await store.incr("gone", ttl_s=0.2)

        async def all_expired() -> bool:
            return await store.get_count("gone") == 0 and await store.get_doc("session", "gone") is None

        await wait_for_condition(all_expired, timeout_s=5, what="the short-lived rows to expire")
        assert await store.purge_expired() == 5  # doc + its index row + token + claim + counter
        assert await store.purge_expired() == 0
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM documents").fetchall() == [("kept",)]
        assert conn.execute("SELECT doc_id FROM document_index").fetchall() == [("kept",)]
    finally:
        conn.close()


async def test_the_event_loop_keeps_running_while_the_database_is_locked(tmp_path: Path) -> None:
    """A write waiting on another process's lock blocks the worker thread, not the loop."""
    path = tmp_path / "db.sqlite3"
    store = await SQLiteStore.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        write = asyncio.create_task(store.put_doc("account", "a1", {}))
        fired = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, fired.set)
        await asyncio.wait_for(fired.wait(), timeout=2)  # the loop serves timers meanwhile
        assert not write.done()
        other.execute("COMMIT")
        await asyncio.wait_for(write, timeout=5)
        assert await store.get_doc("account", "a1") == {}
    finally:
        other.close()
        await store.close()
