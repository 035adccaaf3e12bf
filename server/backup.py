"""Backups of the store and key material, and their restore (layer 3; docs/deployment.md "Backups").

A backup is a gzipped tar, encrypted by server/backup_crypto.py, holding:

    manifest.json            format, version, creation time, store kind, sha256 of each file
    store/teleconsult.sqlite3  an online, consistent copy (SQLite's backup API), SQLite only
    keys/app_secret.key      seals TOTP secrets
    keys/kek.json            the keyring wrapping every recording's data key

With Redis the store is not in the file (back Redis up with its own RDB/AOF snapshots); the
key material is. Recordings are not in the file either: they are ciphertext already, and
their data keys are in the store (copy the recordings directory as it is).

Restore writes onto an EMPTY data directory only (a live one is refused, nothing touched):
everything is decrypted and checked into a staging directory first, and moved into place only
when the whole file authenticated and every sha256 matched.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .auth.secretbox import KEY_FILE_NAME
from .backup_crypto import BackupError, BackupWriter, decrypt_chunks, new_backup_file
from .clock import Clock
from .config import Settings

FORMAT = "teleconsult-backup"
VERSION = 1
MANIFEST = "manifest.json"
STORE_MEMBER = "store/teleconsult.sqlite3"
SECRET_MEMBER = f"keys/{KEY_FILE_NAME}"
KEK_MEMBER = "keys/kek.json"
MEMBERS = frozenset({STORE_MEMBER, SECRET_MEMBER, KEK_MEMBER})


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    store: str  # "sqlite" | "redis"
    files: tuple[str, ...]
    bytes_written: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sources(settings: Settings) -> dict[str, Path]:
    secret, kek = settings.data_dir / KEY_FILE_NAME, settings.kek_path
    for path, what in ((secret, "the app secret"), (kek, "the recording keyring")):
        if not path.is_file():
            raise BackupError(f"{what} {path} is missing: is TELECONSULT_DATA_DIR right?")
    return {SECRET_MEMBER: secret, KEK_MEMBER: kek}


def copy_sqlite_online(source: Path, target: Path) -> None:
    """A consistent copy of a database in use (SQLite's online backup API), then checked."""
    if not source.is_file():
        raise BackupError(f"no database at {source}: is TELECONSULT_DATA_DIR right?")
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise BackupError(f"the database copy failed its integrity check: {verdict}")
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database: {exc}") from None
    finally:
        dst.close()
        src.close()


def create_backup(settings: Settings, out: Path, passphrase: str, clock: Clock) -> BackupSummary:
    """Write an encrypted backup to `out` (a new file) while the server may be running."""
    files = _sources(settings)
    store = "redis" if settings.redis_url else "sqlite"
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=settings.data_dir) as staging:
        if store == "sqlite":
            copy = Path(staging) / "teleconsult.sqlite3"
            copy_sqlite_online(settings.sqlite_path, copy)
            files = {STORE_MEMBER: copy, **files}
        manifest = {
            "format": FORMAT, "version": VERSION, "created_at": clock.now(), "store": store,
            "files": {name: {"sha256": _sha256(path), "bytes": path.stat().st_size}
                      for name, path in files.items()},
        }
        with new_backup_file(out) as fh:
            writer = BackupWriter(fh, passphrase)
            try:
                with tarfile.open(fileobj=writer, mode="w|gz") as tar:  # type: ignore[call-overload]
                    _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
                    for name, path in files.items():
                        tar.add(path, arcname=name, recursive=False)
                writer.close()
            except BaseException:
                fh.close()
                out.unlink(missing_ok=True)
                raise
    return BackupSummary(out, store, tuple(files), out.stat().st_size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class RestoreSummary:
    store: str
    created_at: float
    files: tuple[str, ...]


def _refuse_live_target(settings: Settings) -> None:
    data_dir = settings.data_dir
    if data_dir.exists():
        if not data_dir.is_dir():
            raise BackupError(f"{data_dir} is not a directory")
        if any(data_dir.iterdir()):
            raise BackupError(
                f"refusing to restore: the data directory {data_dir} is not empty (a live or old "
                "installation). Stop the server and move it aside, then restore onto an empty one")
    if settings.kek_path.exists():
        raise BackupError(f"refusing to restore: the keyring {settings.kek_path} already exists")


def _decrypt_to(src_path: Path, passphrase: str, dst: Path) -> None:
    try:
        src = open(src_path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise BackupError(f"cannot read {src_path}: {exc.strerror}") from None
    with src, open(dst, "wb") as out:
        for plain in decrypt_chunks(src, passphrase):
            out.write(plain)


def _read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    member = tar.getmember(MANIFEST)
    fh = tar.extractfile(member)
    if fh is None:
        raise BackupError("the backup has no manifest")
    manifest = json.loads(fh.read())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("the backup's manifest is not a teleconsult manifest")
    if manifest.get("version") != VERSION:
        raise BackupError(f"backup version {manifest.get('version')} is not supported by this version")
    return manifest


def restore_backup(settings: Settings, path: Path, passphrase: str) -> RestoreSummary:
    """Restore onto an empty data directory; nothing is written unless all of it checks out."""
    _refuse_live_target(settings)
    data_dir = settings.data_dir
    created = not data_dir.exists()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        archive = staging / "backup.tar.gz"
        _decrypt_to(path, passphrase, archive)  # every chunk authenticated before we go on
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                manifest = _read_manifest(tar)
                expected: dict[str, Any] = manifest.get("files", {})
                if not set(expected) <= MEMBERS or {SECRET_MEMBER, KEK_MEMBER} - set(expected):
                    raise BackupError("the backup's manifest lists unexpected or missing files")
                for name, meta in expected.items():
                    fh = tar.extractfile(tar.getmember(name))
                    if fh is None:
                        raise BackupError(f"the backup lacks {name}")
                    target = staging / name.replace("/", "_")
                    with open(target, "wb") as out:
                        shutil.copyfileobj(fh, out)
                    if _sha256(target) != meta.get("sha256"):
                        raise BackupError(f"{name} does not match its checksum in the manifest")
        except (tarfile.TarError, KeyError, ValueError, OSError, EOFError) as exc:
            raise BackupError(f"the backup's content is damaged: {type(exc).__name__}") from None
        if manifest["store"] == "sqlite" and STORE_MEMBER not in expected:
            raise BackupError("the backup says SQLite but holds no database")
        places = {SECRET_MEMBER: data_dir / KEY_FILE_NAME, KEK_MEMBER: settings.kek_path}
        if STORE_MEMBER in expected:
            places[STORE_MEMBER] = settings.sqlite_path
        for name, final in places.items():
            staged = staging / name.replace("/", "_")
            os.chmod(staged, 0o600)
            final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.move(staged, final)
        shutil.rmtree(staging)
        return RestoreSummary(str(manifest["store"]), float(manifest.get("created_at", 0)), tuple(places))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
