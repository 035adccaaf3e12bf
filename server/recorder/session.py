"""A recording session: one consultation's recording, layer 4.

Owns the per-participant recorders, the data key, the store record
``("recording", id)`` (indexed by consultation_id) and, at stop, an encrypted manifest
(``manifest.json.enc``: participants by id, start/stop/pause times, files and their
ciphertext sha256). Files live in ``recordings_dir/<recording id>/``; only ciphertext.

Wiring (event loop)::

    session = await RecordingSession.start(store=..., keys=RecordingKeys(...),
        recordings_dir=settings.recordings_dir, consultation_id=cid, clock=clock,
        request_keyframe=lambda participant_id: sfu.request_keyframe(participant_id))
    rec = session.add_participant(pid)            # then rec.on_packet(...) per frame
    await session.pause(); await session.resume() # ConsentMachine PauseWriting/ResumeWriting
    await session.remove_participant(pid)         # participant left
    manifest = await session.stop()               # StopWriting; idempotent (close() too)
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import Conflict, InvalidInput
from ..integrations.events import NO_EVENTS, EventSink, EventType
from ..recording.crypto import DataKey, EncryptedWriter
from ..recording.keys import RecordingKeys
from ..recording.service import RECORDING_KIND
from ..store.base import DocumentStore
from .muxer import ParticipantRecorder, RecordingFileInfo

MANIFEST_NAME = "manifest.json.enc"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class RecordingState(Enum):
    RECORDING = "recording"
    PAUSED = "paused"
    STOPPED = "stopped"


def _check_id(value: str, what: str) -> str:
    if not _SAFE_ID.fullmatch(value):
        raise InvalidInput(f"{what} must be 1-64 letters, digits, '-' or '_'")
    return value


def _make_private_dir(parent: Path, directory: Path) -> None:
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)  # a fresh directory per recording; never reused


RUNNING_INDEX = "running"  # present ("yes") while a record is not stopped: recovery.py finds them


def recording_index(consultation_id: str, state: str) -> dict[str, str]:
    """A recording record's store index: by consultation, and running until it is stopped."""
    index = {"consultation_id": consultation_id}
    if state != RecordingState.STOPPED.value:
        index[RUNNING_INDEX] = "yes"
    return index


class RecordingSession:
    def __init__(self, *, recording_id: str, consultation_id: str, data_key: DataKey,
                 store: DocumentStore, directory: Path, clock: Clock,
                 request_keyframe: Callable[[str], None], events: EventSink = NO_EVENTS,
                 e2ee: Mapping[str, Any] | None = None, node_id: str = "") -> None:
        self.recording_id = recording_id
        self.node_id = node_id  # the cluster node writing it ("" on a single server)
        self._events = events
        self.e2ee = dict(e2ee) if e2ee else None  # E2EE: frames stored as they arrived, still encrypted
        self.consultation_id = consultation_id
        self.directory = directory
        self._key = data_key
        self._store = store
        self._clock = clock
        self._request_keyframe = request_keyframe
        self._loop = asyncio.get_running_loop()
        self.state = RecordingState.RECORDING
        self.created_at = clock.now()
        self._recorders: dict[str, ParticipantRecorder] = {}
        self._files: list[RecordingFileInfo] = []
        self._participants: dict[str, dict[str, Any]] = {}
        self._pauses: list[dict[str, float | None]] = []
        self._seq = 0
        self._stopped_at: float | None = None
        self._stop_lock = asyncio.Lock()

    @classmethod
    async def start(cls, *, store: DocumentStore, keys: RecordingKeys, recordings_dir: Path,
                    consultation_id: str, clock: Clock,
                    request_keyframe: Callable[[str], None],
                    recording_id: str | None = None, events: EventSink = NO_EVENTS,
                    e2ee: Mapping[str, Any] | None = None, node_id: str = "") -> RecordingSession:
        rec_id = _check_id(recording_id or f"rec-{secrets.token_hex(12)}", "recording id")
        _check_id(consultation_id, "consultation id")
        directory = recordings_dir / rec_id
        _make_private_dir(recordings_dir, directory)
        data_key = await keys.create(rec_id)
        session = cls(recording_id=rec_id, consultation_id=consultation_id, data_key=data_key,
                      store=store, directory=directory, clock=clock,
                      request_keyframe=request_keyframe, events=events, e2ee=e2ee,
                      node_id=node_id)
        await session._save()
        return session

    # participants -------------------------------------------------------------------------
    def add_participant(self, participant_id: str,
                        kinds: frozenset[str] = frozenset({"audio", "video"}),
                        ) -> ParticipantRecorder:
        _check_id(participant_id, "participant id")
        if self.state is RecordingState.STOPPED:
            raise Conflict("the recording is stopped")
        if participant_id in self._recorders:
            raise Conflict(f"participant {participant_id} is already being recorded")
        self._seq += 1
        path = self.directory / f"{self._seq:03d}-{participant_id}.webm.enc"
        rec = ParticipantRecorder(
            participant_id=participant_id, path=path, key=self._key,
            request_keyframe=lambda: self._request_keyframe(participant_id),
            loop=self._loop, kinds=kinds)
        if self.state is RecordingState.PAUSED:
            rec.pause()
        self._recorders[participant_id] = rec
        entry = self._participants.setdefault(participant_id, {"id": participant_id,
                                                               "segments": []})
        entry["segments"].append({"file": path.name, "joined_at": self._clock.now(),
                                  "left_at": None})
        return rec

    def recorder(self, participant_id: str) -> ParticipantRecorder | None:
        return self._recorders.get(participant_id)

    async def remove_participant(self, participant_id: str) -> RecordingFileInfo | None:
        rec = self._recorders.pop(participant_id, None)
        if rec is None:
            return None
        info = await rec.close()
        self._files.append(info)
        self._participants[participant_id]["segments"][-1]["left_at"] = self._clock.now()
        await self._save()
        return info

    # state ----------------------------------------------------------------------------------
    async def pause(self) -> None:
        if self.state is RecordingState.RECORDING:
            self._pauses.append({"paused_at": self._clock.now(), "resumed_at": None})
            await self._set_paused(True)

    async def resume(self) -> None:
        if self.state is RecordingState.PAUSED:
            self._pauses[-1]["resumed_at"] = self._clock.now()
            await self._set_paused(False)

    async def _set_paused(self, paused: bool) -> None:
        self.state = RecordingState.PAUSED if paused else RecordingState.RECORDING
        for rec in self._recorders.values():
            if paused:
                rec.pause()
            else:
                rec.resume()
        await self._save()

    async def stop(self) -> dict[str, Any]:
        """Close every file, write the encrypted manifest, mark the record stopped.
        Idempotent: later calls return the same manifest."""
        async with self._stop_lock:
            if self.state is RecordingState.STOPPED:
                return self.manifest()
            self.state = RecordingState.STOPPED
            self._stopped_at = self._clock.now()
            if self._pauses and self._pauses[-1]["resumed_at"] is None:
                self._pauses[-1]["resumed_at"] = self._stopped_at
            for pid in list(self._recorders):
                await self.remove_participant(pid)
            manifest = self.manifest()
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            await asyncio.to_thread(self._write_manifest, body)
            await self._save()
            await self._events.emit(EventType.RECORDING_AVAILABLE,
                                    consultation_id=self.consultation_id, recording_id=self.recording_id)
            return manifest

    async def close(self) -> None:
        await self.stop()

    def manifest(self) -> dict[str, Any]:
        return {
            "format": "teleconsult-recording-manifest", "version": 1,
            "recording_id": self.recording_id, "consultation_id": self.consultation_id,
            "data_key_id": self._key.key_id_hex, "started_at": self.created_at,
            "stopped_at": self._stopped_at, "pauses": self._pauses,
            "participants": list(self._participants.values()),
            "files": [{**f.to_json(), "offset_ms": self._offset_ms(f.file_name)} for f in self._files],
            "duration_ms": self._duration_ms(),
            "e2ee": self.e2ee,
        }

    def _write_manifest(self, body: bytes) -> None:
        writer = EncryptedWriter(self.directory / MANIFEST_NAME, self._key)
        try:
            writer.write(body)
        finally:
            writer.close()

    def _timeline_ms(self, at: float) -> int:
        """Where wall-clock time `at` falls in the recording's own timeline (pauses removed)."""
        paused = 0.0
        for p in self._pauses:
            start, end = float(p["paused_at"] or 0.0), p["resumed_at"]
            if start < at:
                paused += min(at, float(end) if end is not None else at) - start
        return max(0, round((at - self.created_at - paused) * 1000))

    def _offset_ms(self, file_name: str) -> int:
        for entry in self._participants.values():
            for seg in entry["segments"]:
                if seg["file"] == file_name:
                    return self._timeline_ms(float(seg["joined_at"]))
        return 0

    def _duration_ms(self) -> int:
        """The recording's true length: its timeline up to the stop (or now), pauses removed."""
        return self._timeline_ms(self._stopped_at if self._stopped_at is not None else self._clock.now())

    async def _save(self) -> None:
        await self._store.put_doc(RECORDING_KIND, self.recording_id, {
            "id": self.recording_id, "consultation_id": self.consultation_id,
            "created_at": self.created_at, "stopped_at": self._stopped_at,
            "state": self.state.value, "data_key_id": self._key.key_id_hex,
            "directory": self.directory.name,
            "files": [{"participant_id": f.participant_id, "file": f.file_name,
                       "bytes": f.ciphertext_bytes, "sha256": f.ciphertext_sha256,
                       "duration_ms": f.duration_ms, "offset_ms": self._offset_ms(f.file_name),
                       "error": f.error} for f in self._files],
            "duration_ms": self._duration_ms(),
            "e2ee": self.e2ee, "node_id": self.node_id,
        }, index=recording_index(self.consultation_id, self.state.value))
