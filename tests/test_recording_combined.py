"""The combined export (issue #18 item 7): `teleconsult recordings export ID --out DIR --combined`
(the real CLI, in a subprocess) writes combined.webm, every participant in one file, re-encoded
offline at export time: the doctor for the whole 6 s, the patient from 2 s on (their own
offset in the recording). The file reports its duration within 5 % of the recording's true
length (av and ffprobe), the patient's half is black before they joined and a picture after,
and the mixed audio lasts the whole length. The catalogue records the true duration and each
file's offset."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import av

from server.clock import ManualClock
from server.recorder.session import RecordingSession
from server.recording.keys import Keyring, RecordingKeys
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_media import packet_sequence
from tests.helpers.server_process import run_cli, server_env

TOTAL_S, PATIENT_FROM_S = 6.0, 2.0


async def _two_party_recording(tmp_path: Path) -> tuple[str, dict[str, object]]:
    clock = ManualClock(time.time())
    store = await SQLiteStore.open(tmp_path / "data" / "teleconsult.sqlite3")
    try:
        keys = RecordingKeys(store, Keyring.load_or_create(tmp_path / "data" / "kek.json", clock), clock)
        session = await RecordingSession.start(
            store=store, keys=keys, recordings_dir=tmp_path / "recordings", consultation_id="c-comb",
            clock=clock, request_keyframe=lambda _pid: None)
        doctor = session.add_participant("host")
        clock.advance(PATIENT_FROM_S)
        patient = session.add_participant("p_pat")
        for rec, seconds in ((doctor, TOTAL_S), (patient, TOTAL_S - PATIENT_FROM_S)):
            for p in packet_sequence(seconds):
                rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]
        clock.advance(TOTAL_S - PATIENT_FROM_S)
        await session.stop()
        doc = await store.get_doc("recording", session.recording_id)
        assert doc is not None
        return session.recording_id, doc
    finally:
        await store.close()


def _luma(frame: av.VideoFrame, x0: int, x1: int) -> float:
    """Mean Y of the columns x0..x1 over the frame's middle rows (no numpy needed)."""
    plane = frame.planes[0]
    data = bytes(plane)
    rows = range(frame.height // 4, 3 * frame.height // 4, 8)
    values = [data[r * plane.line_size + x] for r in rows for x in range(x0, x1, 8)]
    return sum(values) / len(values)


async def test_combined_export_has_everyone_and_the_true_duration(tmp_path: Path) -> None:
    rid, doc = await _two_party_recording(tmp_path)
    # The catalogue: the true length (not the sum of files) and where each file starts.
    assert abs(int(doc["duration_ms"]) - TOTAL_S * 1000) <= 50, doc["duration_ms"]  # type: ignore[call-overload]
    offsets = {f["participant_id"]: f["offset_ms"] for f in doc["files"]}  # type: ignore[attr-defined]
    assert offsets == {"host": 0, "p_pat": round(PATIENT_FROM_S * 1000)}

    out = tmp_path / "out"
    done = run_cli(["recordings", "export", rid, "--out", str(out), "--combined"], server_env(tmp_path),
                   timeout_s=300)
    assert done.returncode == 0, done.stderr
    assert "combined 2 participant file(s)" in done.stdout
    combined = out / "combined.webm"
    with av.open(str(combined)) as c:
        assert c.duration is not None
        duration = c.duration / av.time_base
        assert abs(duration - TOTAL_S) <= 0.05 * TOTAL_S, duration
        print(f"combined.webm: {duration:.3f} s for a {TOTAL_S} s recording")
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (1280, 480)
        early = late = None
        for frame in c.decode(video=0):
            t = float(frame.time or 0)
            if early is None and t >= 0.8:
                early = (_luma(frame, 0, 640), _luma(frame, 640, 1280))
            if late is None and t >= 4.0:
                late = (_luma(frame, 0, 640), _luma(frame, 640, 1280))
                break
    assert early is not None and late is not None
    assert early[0] > 60 and early[1] < 20, early  # the patient's half black before they joined
    assert late[0] > 60 and late[1] > 60, late  # both pictures once they are both in
    with av.open(str(combined)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 48000 - TOTAL_S) <= 0.05 * TOTAL_S
    probed = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
                             str(combined)], capture_output=True, text=True, timeout=60, check=True)
    assert abs(float(json.loads(probed.stdout)["format"]["duration"]) - TOTAL_S) <= 0.05 * TOTAL_S
