"""A participant's WebM, once closed, carries its duration and cues (issue #18 item 7): the
recorder's finalisation (server/recorder/finalise.py) rewrites the live file offline, still
encrypted, clusters byte for byte. Checked with av (duration, seeking to a keyframe, every frame
decodes) and ffprobe."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
from pathlib import Path

import av

from server.recorder.finalise import finalise_webm
from server.recorder.muxer import ParticipantRecorder
from server.recording.crypto import DataKey, decrypt_file
from tests.helpers.recording_media import packet_sequence


async def _record(path: Path, key: DataKey, seconds: float, kinds: frozenset[str]) -> None:
    rec = ParticipantRecorder(participant_id="p1", path=path, key=key, request_keyframe=lambda: None,
                              loop=asyncio.get_running_loop(), kinds=kinds, max_queued=10_000)
    for p in packet_sequence(seconds):
        rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]
    info = await rec.close()
    assert info.error == ""
    assert info.ciphertext_bytes == path.stat().st_size


def _ffprobe_duration(webm: bytes) -> float:
    # ffprobe reads a pipe, so the plaintext never lands on disk here either.
    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", "-"],
                          input=webm, capture_output=True, timeout=60, check=True)
    return float(json.loads(done.stdout)["format"]["duration"])


async def test_closed_file_has_duration_and_cues(tmp_path: Path) -> None:
    key = DataKey.generate()
    path = tmp_path / "p1.webm.enc"
    await _record(path, key, 6.0, frozenset({"audio", "video"}))
    assert os.listdir(tmp_path) == ["p1.webm.enc"]  # the rewrite left nothing beside it
    webm = decrypt_file(path, key)
    with av.open(io.BytesIO(webm)) as c:
        assert c.duration is not None and abs(c.duration / av.time_base - 6.0) < 0.15, c.duration
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 180
    # Seeking uses the cues: land on the keyframe at 4 s (GOP 2 s) and decode from there.
    with av.open(io.BytesIO(webm)) as c:
        c.seek(4_500_000, any_frame=False)  # microseconds (av.time_base)
        first = next(c.decode(video=0))
        assert first.time is not None and 3.9 <= first.time <= 4.6, first.time
    assert abs(_ffprobe_duration(webm) - 6.0) < 0.15
    assert b"\x1c\x53\xbb\x6b" in webm[:4096]  # the Cues element, before the clusters
    assert finalise_webm(path, key) is None  # already final: untouched
    assert decrypt_file(path, key) == webm


async def test_audio_only_file_has_duration_and_cues(tmp_path: Path) -> None:
    key = DataKey.generate()
    path = tmp_path / "a.webm.enc"
    await _record(path, key, 3.0, frozenset({"audio"}))
    webm = decrypt_file(path, key)
    with av.open(io.BytesIO(webm)) as c:
        assert c.duration is not None and abs(c.duration / av.time_base - 3.0) < 0.15, c.duration
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 48000 - 3.0) < 0.15
    assert b"\x1c\x53\xbb\x6b" in webm[:4096]
