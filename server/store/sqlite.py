"""The embedded store: stdlib sqlite3 in WAL mode, behind one worker thread (DESIGN D4).

Every database call runs on a single dedicated thread, so nothing blocks the event loop and
all access through this object is serialised. Writes still open `BEGIN IMMEDIATE`, so a second
process on the same file (the admin CLI next to a running server) cannot interleave with a
one-time operation or an audit append.

Expiry uses real time (`time.time()`): an expired row is invisible to every read and is
deleted later, by `purge_expired()` which writes call at most once a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")

PURGE_INTERVAL_S = 60.0

# Migration N (1-based) brings the schema from version N-1 to N. Append only; never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE documents (
            kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, expires_at REAL,
            PRIMARY KEY (kind, id))""",
        "CREATE INDEX documents_expiry ON documents (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE document_index (
            kind TEXT NOT NULL, index_name TEXT NOT NULL, value TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            PRIMARY KEY (kind, index_name, value, doc_id))""",
        "CREATE INDEX document_index_by_doc ON document_index (kind, doc_id)",
        """CREATE TABLE tokens (
            kind TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL,
            expires_at REAL NOT NULL, PRIMARY KEY (kind, key))""",
        """CREATE TABLE claims (
            kind TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL NOT NULL,
            PRIMARY KEY (kind, key))""",
        """CREATE TABLE counters (
            key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL NOT NULL)""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, body TEXT NOT NULL,
            hash TEXT NOT NULL)""",
    ),
    (
        """CREATE TABLE seats (
            kind TEXT NOT NULL, grp TEXT NOT NULL, member TEXT NOT NULL, expires_at REAL NOT NULL,
            PRIMARY KEY (kind, grp, member))""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SQLiteStore:
    """`Store` on one SQLite file. Open with `await SQLiteStore.open(path)`."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._conn: sqlite3.Connection | None = conn
        self._last_purge = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        """Open (creating if needed) the database at `path`: directory 0700, file 0600."""
        path = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, conn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, conn.close)
        finally:
            self._executor.shutdown(wait=False)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def schema_version(self) -> int:
        return await self._run(_read_schema_version)

    async def purge_expired(self) -> int:
        """Delete every expired row now; returns how many rows went."""
        return await self._run(lambda c: _in_write(c, lambda: self._purge(c, time.time())))

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

        def write(c: sqlite3.Connection) -> None:
            now = time.time()
            expires_at = None if ttl_s is None else now + ttl_s
            c.execute(
                "INSERT OR REPLACE INTO documents (kind, id, body, expires_at) VALUES (?,?,?,?)",
                (kind, doc_id, body, expires_at),
            )
            c.execute("DELETE FROM document_index WHERE kind=? AND doc_id=?", (kind, doc_id))
            c.executemany(
                "INSERT INTO document_index (kind, index_name, value, doc_id) VALUES (?,?,?,?)",
                [(kind, name, value, doc_id) for name, value in entries],
            )
            self._maybe_purge(c, now)

        await self._write(write)

    async def get_doc(self, kind: str, doc_id: str) -> JSONDict | None:
        check_kind(kind)
        return await self._json_at(
            "SELECT body FROM documents WHERE kind=? AND id=? AND (expires_at IS NULL OR expires_at > ?)",
            lambda: (kind, doc_id, time.time()))

    async def get_docs(self, kind: str, doc_ids: Sequence[str]) -> dict[str, JSONDict]:
        check_kind(kind)
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}

        def read(c: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = c.execute(
                "SELECT id, body FROM documents WHERE kind=? AND id IN (SELECT value FROM json_each(?)) "
                "AND (expires_at IS NULL OR expires_at > ?)", (kind, json.dumps(ids), time.time())).fetchall()
            return [(str(i), str(body)) for i, body in rows]

        return {doc_id: load_json(body) for doc_id, body in await self._run(read)}

    async def delete_doc(self, kind: str, doc_id: str) -> bool:
        check_kind(kind)
        def write(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM documents WHERE kind=? AND id=? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (kind, doc_id, time.time()),
            )
            deleted = cur.rowcount > 0
            # An expired leftover goes too, with the index rows either way.
            c.execute("DELETE FROM documents WHERE kind=? AND id=?", (kind, doc_id))
            c.execute("DELETE FROM document_index WHERE kind=? AND doc_id=?", (kind, doc_id))
            return deleted

        return await self._write(write)

    async def find_docs(self, kind: str, index_name: str, value: str) -> list[JSONDict]:
        check_kind(kind)
        def read(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                "SELECT d.body FROM document_index i JOIN documents d "
                "ON d.kind = i.kind AND d.id = i.doc_id "
                "WHERE i.kind=? AND i.index_name=? AND i.value=? "
                "AND (d.expires_at IS NULL OR d.expires_at > ?)",
                (kind, index_name, value, time.time()),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return [load_json(b) for b in await self._run(read)]

    async def list_docs(self, kind: str) -> list[JSONDict]:
        check_kind(kind)
        def read(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                "SELECT body FROM documents WHERE kind=? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (kind, time.time()),
            ).fetchall()
            return [str(r[0]) for r in rows]

        return [load_json(b) for b in await self._run(read)]

    # -- tokens and claims --------------------------------------------------------------------

    async def put_token(
        self, kind: str, key: str, payload: Mapping[str, Any], ttl_s: float
    ) -> None:
        check_kind(kind)
        check_id(key)
        check_ttl(ttl_s)
        body = dump_json(payload)

        def write(c: sqlite3.Connection) -> None:
            now = time.time()
            c.execute(
                "INSERT OR REPLACE INTO tokens (kind, key, payload, expires_at) VALUES (?,?,?,?)",
                (kind, key, body, now + ttl_s),
            )
            self._maybe_purge(c, now)

        await self._write(write)

    async def peek_token(self, kind: str, key: str) -> JSONDict | None:
        check_kind(kind)
        return await self._json_at("SELECT payload FROM tokens WHERE kind=? AND key=? AND expires_at > ?",
                                   lambda: (kind, key, time.time()))

    async def _json_at(self, sql: str, args: Callable[[], tuple[Any, ...]]) -> JSONDict | None:
        """The JSON text in the first column of the row `sql` selects (args taken when it runs), or None."""
        def read(c: sqlite3.Connection) -> str | None:
            row = c.execute(sql, args()).fetchone()
            return None if row is None else str(row[0])

        body = await self._run(read)
        return None if body is None else load_json(body)

    async def consume_token(self, kind: str, key: str) -> JSONDict | None:
        check_kind(kind)
        def write(c: sqlite3.Connection) -> str | None:
            row = c.execute(
                "SELECT payload, expires_at FROM tokens WHERE kind=? AND key=?", (kind, key)
            ).fetchone()
            if row is None:
                return None
            c.execute("DELETE FROM tokens WHERE kind=? AND key=?", (kind, key))
            return str(row[0]) if float(row[1]) > time.time() else None

        body = await self._write(write)
        return None if body is None else load_json(body)

    async def delete_token(self, kind: str, key: str) -> bool:
        check_kind(kind)
        def write(c: sqlite3.Connection) -> bool:
            live = c.execute(
                "DELETE FROM tokens WHERE kind=? AND key=? AND expires_at > ?",
                (kind, key, time.time()),
            ).rowcount
            c.execute("DELETE FROM tokens WHERE kind=? AND key=?", (kind, key))
            return live > 0

        return await self._write(write)

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        check_kind(kind)
        check_id(key)
        check_ttl(ttl_s)

        def write(c: sqlite3.Connection) -> bool:
            now = time.time()
            row = c.execute(
                "SELECT 1 FROM claims WHERE kind=? AND key=? AND expires_at > ?", (kind, key, now)
            ).fetchone()
            if row is not None:
                return False
            c.execute(
                "INSERT OR REPLACE INTO claims (kind, key, expires_at) VALUES (?,?,?)",
                (kind, key, now + ttl_s),
            )
            self._maybe_purge(c, now)
            return True

        return await self._write(write)

    # -- seats ----------------------------------------------------------------------------------

    async def take_seat(self, kind: str, group: str, member: str, limit: int, ttl_s: float) -> bool:
        check_seat(kind, group, member, limit, ttl_s)

        def write(c: sqlite3.Connection) -> bool:  # one BEGIN IMMEDIATE: count and insert together
            now = time.time()
            c.execute("DELETE FROM seats WHERE kind=? AND grp=? AND expires_at <= ?", (kind, group, now))
            held = c.execute(
                "SELECT 1 FROM seats WHERE kind=? AND grp=? AND member=?", (kind, group, member)
            ).fetchone()
            if held is None:
                (taken,) = c.execute(
                    "SELECT COUNT(*) FROM seats WHERE kind=? AND grp=?", (kind, group)
                ).fetchone()
                if int(taken) >= limit:
                    return False
            c.execute(
                "INSERT OR REPLACE INTO seats (kind, grp, member, expires_at) VALUES (?,?,?,?)",
                (kind, group, member, now + ttl_s),
            )
            self._maybe_purge(c, now)
            return True

        return await self._write(write)

    async def release_seat(self, kind: str, group: str, member: str) -> bool:
        check_seat(kind, group, member, 1, 1.0)
        return await self._write(lambda c: c.execute(
            "DELETE FROM seats WHERE kind=? AND grp=? AND member=?", (kind, group, member)
        ).rowcount > 0)

    async def seat_holders(self, kind: str, group: str) -> set[str]:
        check_kind(kind)
        check_id(group)
        rows = await self._run(lambda c: c.execute(
            "SELECT member FROM seats WHERE kind=? AND grp=? AND expires_at > ?", (kind, group, time.time())
        ).fetchall())
        return {str(r[0]) for r in rows}

    # -- counters -------------------------------------------------------------------------------

    async def incr(self, key: str, ttl_s: float) -> int:
        check_id(key)
        check_ttl(ttl_s)

        def write(c: sqlite3.Connection) -> int:
            now = time.time()
            row = c.execute(
                "SELECT value FROM counters WHERE key=? AND expires_at > ?", (key, now)
            ).fetchone()
            if row is None:
                c.execute(
                    "INSERT OR REPLACE INTO counters (key, value, expires_at) VALUES (?,1,?)",
                    (key, now + ttl_s),
                )
                self._maybe_purge(c, now)
                return 1
            value = int(row[0]) + 1
            c.execute("UPDATE counters SET value=? WHERE key=?", (value, key))
            return value

        return await self._write(write)

    async def get_count(self, key: str) -> int:
        def read(c: sqlite3.Connection) -> int:
            row = c.execute(
                "SELECT value FROM counters WHERE key=? AND expires_at > ?", (key, time.time())
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(read)

    async def reset_count(self, key: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM counters WHERE key=?", (key,)))

    # -- audit ----------------------------------------------------------------------------------

    async def append_audit(self, build: AuditBuilder) -> AuditRecord:
        def write(c: sqlite3.Connection) -> AuditRecord:
            row = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            head_seq, head_hash = (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))
            record = build(head_seq, head_hash)
            check_audit_record(record, head_seq, head_hash)
            c.execute(
                "INSERT INTO audit (seq, prev_hash, body, hash) VALUES (?,?,?,?)",
                (record.seq, record.prev_hash, record.body, record.hash),
            )
            return record

        return await self._write(write)

    async def audit_records(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        if limit < 1:
            raise ValueError("limit must be at least 1")

        def read(c: sqlite3.Connection) -> list[AuditRecord]:
            rows = c.execute(
                "SELECT seq, prev_hash, body, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
            return [AuditRecord(int(s), str(p), str(b), str(h)) for s, p, b, h in rows]

        return await self._run(read)

    # -- internals ----------------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise Unavailable("the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, conn)
        except sqlite3.OperationalError as exc:
            # Locked for longer than busy_timeout, disk full, file gone: not the caller's fault.
            raise Unavailable("the embedded store did not answer") from exc

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(lambda c: _in_write(c, lambda: fn(c)))

    def _maybe_purge(self, c: sqlite3.Connection, now: float) -> None:
        if time.monotonic() - self._last_purge >= PURGE_INTERVAL_S:
            self._purge(c, now)

    def _purge(self, c: sqlite3.Connection, now: float) -> int:
        self._last_purge = time.monotonic()
        n = c.execute(
            "DELETE FROM document_index WHERE (kind, doc_id) IN "
            "(SELECT kind, id FROM documents WHERE expires_at <= ?)",
            (now,),
        ).rowcount
        n += c.execute("DELETE FROM documents WHERE expires_at <= ?", (now,)).rowcount
        for table in ("tokens", "claims", "counters", "seats"):
            n += c.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now,)).rowcount  # noqa: S608
        return n


def _connect(path: Path) -> sqlite3.Connection:
    """Runs on the worker thread: create dir/file with tight modes, configure, migrate."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a power cut
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _read_schema_version(c: sqlite3.Connection) -> int:
    exists = c.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = c.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def _migrate(c: sqlite3.Connection) -> None:
    def apply() -> None:
        c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = _read_schema_version(c)
        if current > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"database schema version {current} is newer than this server ({SCHEMA_VERSION})"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                c.execute(statement)
        c.execute("DELETE FROM schema_version")
        c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    _in_write(c, apply)


def _in_write(c: sqlite3.Connection, fn: Callable[[], T]) -> T:
    c.execute("BEGIN IMMEDIATE")
    try:
        result = fn()
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")
    return result


__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
