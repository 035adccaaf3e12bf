"""Recordings left running by a process that died, layer 4: found, closed and kept.

A recording's record says "recording" (or "paused") until its session stops it
(session.py). When the process that holds the session dies (power cut, SIGKILL, a node lost
with the machine), nothing stops it: the record would say "recording" for ever, list no files,
never be exported (export wants "stopped") and never be purged by the retention period. Its
files are on disk, each decrypting up to its last complete chunk (recording/crypto.py).

`recover_interrupted` closes such a record: state "stopped" with `interrupted: true`, every
file of its directory listed with its size, digest, how far it plays, and why it ends early.
Nothing is rewritten or deleted: the files stay as the dead writer left them. Which records
are orphans is the caller's to say (api/recording_recovery.py: at start for this process's
own, and in a cluster for nodes no longer alive).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import DomainError, Unavailable
from ..integrations.events import NO_EVENTS, EventSink, EventType
from ..recording.crypto import DataKey
from ..recording.keys import RecordingKeys
from ..recording.service import RECORDING_KIND
from ..store.base import DocumentStore
from .finalise import playable_ms
from .session import RUNNING_INDEX, recording_index

log = logging.getLogger("teleconsult.recording")
ACTIVE_STATES = frozenset({"recording", "paused"})
INTERRUPTED_ERROR = "interrupted: the server stopped while recording; the file plays up to then"
LIVE_SUFFIX = ".webm.enc"


def _file_entry(path: Path, key: DataKey) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    participant = path.name.removesuffix(LIVE_SUFFIX).split("-", 1)[-1]
    return {"participant_id": participant, "file": path.name, "bytes": path.stat().st_size,
            "sha256": digest.hexdigest(), "duration_ms": playable_ms(path, key),
            "offset_ms": 0, "error": INTERRUPTED_ERROR}  # the join times were in the lost session


def _close_files(directory: Path, listed: set[str],
                 key: DataKey) -> tuple[list[dict[str, Any]], float | None]:
    """Entries for the files of `directory` not yet listed, and the latest write among them."""
    if not directory.is_dir():
        return [], None
    paths = sorted(p for p in directory.iterdir() if p.name.endswith(LIVE_SUFFIX) and p.name not in listed)
    entries = [_file_entry(p, key) for p in paths]
    last = max((p.stat().st_mtime for p in paths), default=None)
    return entries, last


async def recover_interrupted(store: DocumentStore, keys: RecordingKeys, recordings_dir: Path,
                              is_orphan: Callable[[Mapping[str, Any]], Awaitable[bool]], *,
                              every_record: bool = False, events: EventSink = NO_EVENTS,
                              failed: set[str] | None = None) -> list[str]:
    """Close every running record `is_orphan` says nobody holds; their ids. The running ones
    are found by their index; `every_record` reads all records instead (once, at start: records
    written before that index existed). A record whose directory this machine cannot see is
    left to a process that can (its files are there). Ids that fail are added to `failed` and
    skipped when it is passed again."""
    closed: list[str] = []
    failed = failed if failed is not None else set()
    docs = (await store.list_docs(RECORDING_KIND) if every_record
            else await store.find_docs(RECORDING_KIND, RUNNING_INDEX, "yes"))
    for doc in docs:
        rid = str(doc.get("id"))
        if rid in failed or doc.get("state") not in ACTIVE_STATES or not await is_orphan(doc):
            continue
        try:
            if await _close(store, keys, recordings_dir, doc, events):
                closed.append(rid)
        except Unavailable:
            raise  # the store does not answer: the next sweep tries again (so do its own errors)
        except (DomainError, OSError, ValueError, KeyError, TypeError):
            # this record's own trouble (its key destroyed, a file unreadable, a field missing)
            # never stops the others
            failed.add(rid)
            log.exception("closing the interrupted recording %s failed; not tried again by this process", rid)
    return closed


async def _close(store: DocumentStore, keys: RecordingKeys, recordings_dir: Path,
                 doc: Mapping[str, Any], events: EventSink) -> bool:
    rid = str(doc["id"])
    directory = recordings_dir / str(doc["directory"])
    if not directory.is_dir():
        log.debug("recording %s: its process is gone and its directory is not on this machine", rid)
        return False
    key = await keys.get(rid)
    files = list(doc.get("files") or [])
    entries, last_write = await asyncio.to_thread(
        _close_files, directory, {str(f["file"]) for f in files}, key)
    created = float(doc["created_at"])
    stopped = max(created, last_write if last_write is not None else created)
    fresh = await store.get_doc(RECORDING_KIND, rid)  # its owner may have stopped it meanwhile
    if fresh is None or fresh.get("state") not in ACTIVE_STATES:
        return False
    await store.put_doc(RECORDING_KIND, rid, {
        **fresh, "state": "stopped", "interrupted": True, "stopped_at": stopped,
        "files": files + entries, "duration_ms": max(
            (int(f.get("offset_ms") or 0) + int(f.get("duration_ms") or 0) for f in files + entries),
            default=round((stopped - created) * 1000)),
    }, index=recording_index(str(doc["consultation_id"]), "stopped"))
    log.warning("recording %s of consultation %s was interrupted (its process stopped while "
                "recording); closed with %d files", rid, doc["consultation_id"], len(entries))
    await events.emit(EventType.RECORDING_AVAILABLE, consultation_id=str(doc["consultation_id"]),
                      recording_id=rid)
    return True
