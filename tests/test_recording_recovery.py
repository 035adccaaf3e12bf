"""recover_interrupted on a real SQLite store, real keys and real recorder files: only the
records the caller calls orphans are closed; a stopped one is never touched; a record that
cannot be closed (its data key destroyed) is logged, kept running and not tried again, and
does not stop the others; the running index empties as records close."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from server.clock import ManualClock
from server.recorder.muxer import ParticipantRecorder
from server.recorder.recovery import recover_interrupted
from server.recorder.session import RUNNING_INDEX, RecordingSession
from server.recording.keys import Keyring, RecordingKeys
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_media import packet_sequence


def _feed(rec: ParticipantRecorder, seconds: float) -> None:
    for p in packet_sequence(seconds):
        rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]


async def test_only_orphans_are_closed_and_a_bad_record_stops_nothing(
        sqlite_store: SQLiteStore, tmp_path: Path, clock: ManualClock,
        caplog: pytest.LogCaptureFixture) -> None:
    keys = RecordingKeys(sqlite_store, Keyring.load_or_create(tmp_path / "kek.json", clock), clock)
    recordings = tmp_path / "recordings"

    async def start(cid: str) -> RecordingSession:
        return await RecordingSession.start(store=sqlite_store, keys=keys, recordings_dir=recordings,
                                            consultation_id=cid, clock=clock,
                                            request_keyframe=lambda _pid: None, node_id="node-a")

    cut, broken, alive, done = [await start(c) for c in ("c-cut", "c-broken", "c-alive", "c-done")]
    writers = []
    for session in (cut, alive):
        writers.append(rec := session.add_participant("doc"))
        _feed(rec, 2.0)
    clock.advance(3)
    await done.stop()
    running = {d["id"] for d in await sqlite_store.find_docs("recording", RUNNING_INDEX, "yes")}
    assert running == {cut.recording_id, broken.recording_id, alive.recording_id}
    await keys.destroy(broken.recording_id)

    asked: list[str] = []

    async def orphan(doc: Mapping[str, Any]) -> bool:
        asked.append(str(doc["id"]))
        return doc["id"] != alive.recording_id

    failed: set[str] = set()
    with caplog.at_level(logging.WARNING, logger="teleconsult.recording"):
        closed = await recover_interrupted(sqlite_store, keys, recordings, orphan, failed=failed)
    assert closed == [cut.recording_id] and failed == {broken.recording_id}
    assert done.recording_id not in asked  # stopped: not even a candidate
    record = await sqlite_store.get_doc("recording", cut.recording_id)
    assert record is not None and record["state"] == "stopped" and record["interrupted"] is True
    assert [f["file"] for f in record["files"]] == ["001-doc.webm.enc"]
    assert record["files"][0]["participant_id"] == "doc" and record["files"][0]["sha256"]
    assert "interrupted" in record["files"][0]["error"] and record["node_id"] == "node-a"
    for rid in (broken.recording_id, alive.recording_id):
        kept = await sqlite_store.get_doc("recording", rid)
        assert kept is not None and kept["state"] == "recording"
    assert any("was interrupted" in r.getMessage() and cut.recording_id in r.getMessage()
               for r in caplog.records)
    assert any("not tried again" in r.getMessage() for r in caplog.records)
    # the next sweep: nothing left to close, the broken one not asked about again
    asked.clear()
    assert await recover_interrupted(sqlite_store, keys, recordings, orphan, failed=failed) == []
    assert asked == [alive.recording_id]
    await alive.stop()
    await writers[0].close()  # the dead process's writer thread, ended for this test only
    still = await sqlite_store.find_docs("recording", RUNNING_INDEX, "yes")
    assert [d["id"] for d in still] == [broken.recording_id]  # kept running, never lost
