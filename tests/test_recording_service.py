"""Recordings service over the real SQLite store: list, export (playable), delete, purge."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from server.clock import ManualClock
from server.errors import Conflict, NotFound
from server.recorder.session import RecordingSession
from server.recording.crypto import decrypt_file
from server.recording.keys import DataKeyDestroyed, Keyring, RecordingKeys
from server.recording.service import RecordingService
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_media import packet_sequence


async def test_list_export_delete_purge(sqlite_store: SQLiteStore, tmp_path: Path,
                                        clock: ManualClock) -> None:
    keys = RecordingKeys(sqlite_store, Keyring.load_or_create(tmp_path / "kek.json", clock), clock)
    rec_dir = tmp_path / "recordings"
    service = RecordingService(sqlite_store, keys, rec_dir, clock, retention_days=30)
    sessions = []
    for cid in ("c-old", "c-new"):
        s = await RecordingSession.start(store=sqlite_store, keys=keys, recordings_dir=rec_dir,
                                         consultation_id=cid, clock=clock,
                                         request_keyframe=lambda _pid: None)
        rec = s.add_participant("doc")
        for p in packet_sequence(3.0):
            rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]
        sessions.append(s)
        clock.advance(20 * 86400)
    running = sessions[1]
    with pytest.raises(Conflict):
        await service.export(running.recording_id, tmp_path / "out")
    for s in sessions:
        await s.stop()
    listed = await service.list_recordings()
    assert [r.consultation_id for r in listed] == ["c-old", "c-new"]
    assert all(r.state == "stopped" for r in listed)

    results = await service.export(sessions[0].recording_id, tmp_path / "out")
    assert [r.truncated for r in results] == [False, False]
    with av.open(str(tmp_path / "out" / "001-doc.webm")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 90
    assert (tmp_path / "out" / "manifest.json").read_bytes().startswith(b"{")

    old_file = sessions[0].directory / "001-doc.webm.enc"
    backup = old_file.read_bytes()
    key = await keys.get(sessions[0].recording_id)
    assert await service.purge() == [sessions[0].recording_id]  # 40 days old > 30
    assert not sessions[0].directory.exists()
    with pytest.raises(DataKeyDestroyed):
        await keys.get(sessions[0].recording_id)
    with pytest.raises(NotFound):
        await service.export(sessions[0].recording_id, tmp_path / "out2")
    assert [r.recording_id for r in await service.list_recordings()] == [sessions[1].recording_id]
    # The backup decrypts only with the destroyed key: the server holds nothing that opens it.
    (tmp_path / "backup.enc").write_bytes(backup)
    assert decrypt_file(tmp_path / "backup.enc", key)[:4] == b"\x1a\x45\xdf\xa3"
    assert await sqlite_store.get_doc("recording_key", sessions[0].recording_id) is None
