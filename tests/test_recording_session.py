"""RecordingSession: per-participant files, store record, encrypted manifest; recorder CPU cost."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import av

from server.clock import ManualClock
from server.recorder.muxer import ParticipantRecorder
from server.recorder.session import MANIFEST_NAME, RecordingSession, RecordingState
from server.recording.crypto import decrypt_file
from server.recording.keys import Keyring, RecordingKeys
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_media import MediaPacket, encoded_vp8, packet_sequence

EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def _feed(rec: ParticipantRecorder, packets: list[MediaPacket]) -> None:
    for p in packets:
        rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]


async def test_session_files_record_and_manifest(
        sqlite_store: SQLiteStore, tmp_path: Path, clock: ManualClock) -> None:
    keys = RecordingKeys(sqlite_store, Keyring.load_or_create(tmp_path / "kek.json", clock), clock)
    asked: list[str] = []
    session = await RecordingSession.start(
        store=sqlite_store, keys=keys, recordings_dir=tmp_path / "recordings",
        consultation_id="c-1", clock=clock, request_keyframe=asked.append)
    packets = packet_sequence(3.0)
    doctor = session.add_participant("doc")
    patient = session.add_participant("pat", kinds=frozenset({"audio"}))
    _feed(doctor, [p for p in packets if p.arrival < 1001.5])
    _feed(patient, [p for p in packets if p.arrival < 1001.5])
    clock.advance(1.5)
    await session.pause()
    clock.advance(10)
    await session.resume()
    _feed(doctor, [p for p in packets if p.arrival >= 1001.5])
    _feed(patient, [p for p in packets if p.arrival >= 1001.5])
    clock.advance(1.5)
    manifest = await session.stop()
    assert await session.stop() == manifest
    assert session.state is RecordingState.STOPPED
    assert asked.count("doc") >= 2 and "pat" not in asked  # start + resume; audio-only: none

    record = await sqlite_store.get_doc("recording", session.recording_id)
    assert record is not None and record["state"] == "stopped"
    assert record["consultation_id"] == "c-1" and len(record["files"]) == 2
    assert [d["id"] for d in await sqlite_store.find_docs("recording", "consultation_id",
                                                           "c-1")] == [session.recording_id]

    key = await keys.get(session.recording_id)
    on_disk = json.loads(decrypt_file(session.directory / MANIFEST_NAME, key))
    assert on_disk == manifest
    assert [p["id"] for p in manifest["participants"]] == ["doc", "pat"]
    assert manifest["pauses"] == [{"paused_at": clock.now() - 11.5,
                                   "resumed_at": clock.now() - 1.5}]
    names = sorted(p.name for p in session.directory.iterdir())
    assert names == ["001-doc.webm.enc", "002-pat.webm.enc", MANIFEST_NAME]
    for name in names:
        raw = (session.directory / name).read_bytes()
        assert EBML_MAGIC not in raw and b"teleconsult-recording-manifest" not in raw
    with av.open(io.BytesIO(decrypt_file(session.directory / "001-doc.webm.enc", key))) as c:
        assert sum(1 for _ in c.decode(video=0)) == 45 + 30  # resume waits for the 2 s keyframe
    with av.open(io.BytesIO(decrypt_file(session.directory / "002-pat.webm.enc", key))) as c:
        assert [s.type for s in c.streams] == ["audio"]
        assert sum(f.samples for f in c.decode(audio=0)) > 48000 * 2.5


async def test_recorder_muxes_and_encrypts_ten_seconds_of_a_call(tmp_path: Path) -> None:
    """10 s of 640x480@30 VP8 + Opus muxed and encrypted whole. The CPU it took is printed;
    the figure that counts is bench.recording_overhead's (a timed bound here only flakes)."""
    seconds = 10.0
    packets = packet_sequence(seconds)
    encoded_vp8(seconds)  # encoding (test input) happens before the measurement
    from server.recording.crypto import DataKey

    rec = ParticipantRecorder(participant_id="p", path=tmp_path / "p.enc", key=DataKey.generate(),
                              request_keyframe=lambda: None, loop=asyncio.get_running_loop(),
                              max_queued=10_000)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    _feed(rec, packets)
    info = await rec.close()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    mbit = info.ciphertext_bytes * 8 / seconds / 1e6
    print(f"\nrecorder: {seconds:.0f} s media ({len(packets)} packets, {mbit:.2f} Mbit/s) "
          f"muxed+encrypted in {cpu:.3f} s CPU ({cpu / seconds * 100:.2f} % of one core), "
          f"wall {wall:.3f} s")
    assert info.video_frames == 300 and info.error == ""
