"""Recordings administration for the CLI and admin pages, layer 3+ (store protocol, files).

`teleconsult recordings list|export|delete|purge` call this. Erasure is crypto-shredding:
the wrapped data key is destroyed first, then the files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..clock import Clock
from ..errors import Conflict, NotFound
from ..store.base import DocumentStore
from .crypto import DataKey, DecryptResult, decrypt_stream
from .keys import RecordingKeys

RECORDING_KIND = "recording"  # same as session.RECORDING_KIND (layer 4 may not be imported)


@dataclass(frozen=True)
class RecordingSummary:
    recording_id: str
    consultation_id: str
    created_at: float
    state: str
    files: tuple[str, ...]


class RecordingService:
    def __init__(self, store: DocumentStore, keys: RecordingKeys, recordings_dir: Path,
                 clock: Clock, retention_days: int) -> None:
        self._store = store
        self._keys = keys
        self._dir = recordings_dir
        self._clock = clock
        self._retention_s = retention_days * 86400

    async def list_recordings(self) -> list[RecordingSummary]:
        docs = await self._store.list_docs(RECORDING_KIND)
        out = [RecordingSummary(str(d["id"]), str(d["consultation_id"]), float(d["created_at"]),
                                str(d["state"]), tuple(str(f["file"]) for f in d["files"]))
               for d in docs]
        return sorted(out, key=lambda r: r.created_at)

    async def export(self, recording_id: str, dest_dir: Path) -> list[DecryptResult]:
        """Decrypt every file of a stopped recording into dest_dir (playable .webm files and
        manifest.json). Truncated files are exported as far as they decrypt."""
        doc = await self._doc(recording_id)
        if doc["state"] != "stopped":
            raise Conflict("the recording is still running")
        key = await self._keys.get(recording_id)
        src_dir = self._dir / str(doc["directory"])
        names = sorted(p.name for p in await asyncio.to_thread(_list_dir, src_dir))
        results = []
        for name in names:
            if not name.endswith(".enc"):
                continue
            results.append(await asyncio.to_thread(
                _decrypt_one, src_dir / name, dest_dir / name.removesuffix(".enc"), key))
        return results

    async def delete(self, recording_id: str) -> None:
        """Crypto-shred: the data key first, then the files, then the record."""
        doc = await self._doc(recording_id)
        await self._keys.destroy(recording_id)
        await asyncio.to_thread(shutil.rmtree, self._dir / str(doc["directory"]), True)
        await self._store.delete_doc(RECORDING_KIND, recording_id)

    async def purge(self) -> list[str]:
        """Delete stopped recordings older than the retention period. Returns their ids."""
        cutoff = self._clock.now() - self._retention_s
        gone = []
        for rec in await self.list_recordings():
            if rec.state == "stopped" and rec.created_at < cutoff:
                await self.delete(rec.recording_id)
                gone.append(rec.recording_id)
        return gone

    async def _doc(self, recording_id: str) -> dict[str, object]:
        doc = await self._store.get_doc(RECORDING_KIND, recording_id)
        if doc is None:
            raise NotFound(f"no recording {recording_id}")
        return doc


def _list_dir(path: Path) -> list[Path]:
    return list(path.iterdir())


def _decrypt_one(src: Path, dst: Path, key: DataKey) -> DecryptResult:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
        return decrypt_stream(fin, fout, key, strict=False)
