"""Recordings administration for the CLI and admin pages, layer 3 (store protocol, files).

`teleconsult recordings list|export|delete|purge` call this. Erasure is crypto-shredding:
the wrapped data key is destroyed first, then the files.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import Conflict, NotFound
from ..integrations.events import NO_EVENTS, EventSink, EventType
from ..store.base import DocumentStore
from .crypto import DataKey, DecryptResult, decrypt_file, decrypt_stream
from .escrow import ESCROW_KIND, EscrowLog
from .keys import RecordingKeys
from .sealed import write_sealed_bundle

RECORDING_KIND = "recording"  # the store kind of a recording record (written by server/recorder/session.py)
E2EE_EXPORT_MESSAGE = (
    "This recording is end-to-end encrypted: the server cannot decrypt it. Use "
    "`recordings export ID --sealed --out FILE` here, then `recordings open FILE "
    "--recording-key KEYFILE --out DIR` on the clinic's computer (or `recordings export ID "
    "--recording-key KEYFILE --out DIR` where both are present, never on the server).")


@dataclass(frozen=True)
class RecordingSummary:
    recording_id: str
    consultation_id: str
    created_at: float
    state: str
    files: tuple[str, ...]


class RecordingService:
    def __init__(self, store: DocumentStore, keys: RecordingKeys, recordings_dir: Path,
                 clock: Clock, retention_days: int, events: EventSink = NO_EVENTS) -> None:
        self._store = store
        self._events = events
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
        if doc.get("e2ee"):
            raise Conflict(E2EE_EXPORT_MESSAGE, code="recording_e2ee")
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

    async def export_sealed(self, recording_id: str, dest: Path, escrow: EscrowLog) -> int:
        """E2EE recording: write the sealed bundle (sealed.py) to `dest`; returns its file count.
        The outer layer is removed in a private temporary directory beside `dest`."""
        doc = await self._doc(recording_id)
        if doc["state"] != "stopped":
            raise Conflict("the recording is still running")
        if not doc.get("e2ee"):
            raise Conflict("This recording is not end-to-end encrypted: export it without "
                           "--sealed.", code="recording_not_e2ee")
        key = await self._keys.get(recording_id)
        src_dir = self._dir / str(doc["directory"])
        names = sorted(p.name for p in await asyncio.to_thread(_list_dir, src_dir))
        records = [r.to_json() for r in await escrow.records(recording_id)]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".sealing-") as tmp:
            files: dict[str, Path] = {}
            for name in names:
                if name.endswith(".webm.enc"):
                    plain = name.removesuffix(".enc")
                    await asyncio.to_thread(_decrypt_one, src_dir / name, Path(tmp) / plain, key)
                    files[plain] = Path(tmp) / plain
            manifest: dict[str, Any] = {}
            if (src_dir / "manifest.json.enc").exists():
                manifest = json.loads(await asyncio.to_thread(
                    decrypt_file, src_dir / "manifest.json.enc", key))
            index = {"record": doc, "manifest": manifest, "escrow": records}
            await asyncio.to_thread(write_sealed_bundle, dest, index, files)
        return len(files)

    async def delete(self, recording_id: str) -> None:
        """Crypto-shred: the data key first, then the files, then the record."""
        doc = await self._doc(recording_id)
        await self._keys.destroy(recording_id)
        await self._store.delete_doc(ESCROW_KIND, recording_id)
        await asyncio.to_thread(shutil.rmtree, self._dir / str(doc["directory"]), True)
        await self._store.delete_doc(RECORDING_KIND, recording_id)
        await self._events.emit(EventType.RECORDING_DELETED, consultation_id=str(doc["consultation_id"]),
                                recording_id=recording_id)

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
