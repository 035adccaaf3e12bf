"""Recorder: real VP8+Opus packets muxed without re-encoding into encrypted WebM that decodes."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from server.recorder.muxer import ParticipantRecorder, RecordingFileInfo, vp8_keyframe_size
from server.recorder.timeline import Timeline
from server.recording.crypto import DataKey, decrypt_file
from tests.helpers.recording_media import FPS, MediaPacket, encoded_vp8, packet_sequence
from tests.helpers.waiting import wait_for_condition

EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def _recorder(path: Path, key: DataKey, calls: list[int]) -> ParticipantRecorder:
    return ParticipantRecorder(participant_id="p1", path=path, key=key,
                               request_keyframe=lambda: calls.append(1),
                               loop=asyncio.get_running_loop(), max_queued=10_000)


def _feed(rec: ParticipantRecorder, packets: list[MediaPacket]) -> None:
    for p in packets:
        rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]


def _demux(webm: bytes) -> dict[str, list[tuple[int, bool]]]:
    """(pts in ms, keyframe) per stream type, in file order."""
    out: dict[str, list[tuple[int, bool]]] = {"video": [], "audio": []}
    with av.open(io.BytesIO(webm)) as c:
        for pkt in c.demux():
            if pkt.size and pkt.pts is not None:
                ms = int(pkt.pts * pkt.time_base * 1000)
                out[pkt.stream.type].append((ms, pkt.is_keyframe))
    return out


def _decode_counts(webm: bytes) -> tuple[int, int, tuple[int, int]]:
    with av.open(io.BytesIO(webm)) as c:
        frames = list(c.decode(video=0))
        size = (frames[0].width, frames[0].height)
    with av.open(io.BytesIO(webm)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    return len(frames), samples, size


def _files_containing(root: Path, needles: list[bytes], since: float,
                      skip: Path | None = None, keep: Path | None = None) -> list[Path]:
    """Files under `root` written since `since` holding a needle; under `skip`, only those
    also under `keep` are looked at."""
    hits = []
    for path in root.rglob("*"):
        if skip is not None and path.is_relative_to(skip) and not (keep and path.is_relative_to(keep)):
            continue
        try:
            if not path.is_file() or path.stat().st_mtime < since or path.stat().st_size > 50e6:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if any(n in data for n in needles):
            hits.append(path)
    return hits


async def test_six_seconds_decode_and_no_plaintext_on_disk(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    start = time.time() - 1
    # pytest's temp trees (this run's other tests, other runs on the machine) hold deliberate
    # plaintext exports of the same synthetic media, not this recorder's doing: of those trees
    # only this test's own directory is scanned; everything else in the temp dir is.
    pytest_trees = tmp_path_factory.getbasetemp().parent
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    key = DataKey.generate()
    packets = packet_sequence(6.0)
    known_frame = encoded_vp8(6.0)[0][200:264]  # bytes from inside the first keyframe
    calls: list[int] = []
    rec = _recorder(rec_dir / "p1.webm.enc", key, calls)
    half = len(packets) // 2
    _feed(rec, packets[:half])
    path = rec_dir / "p1.webm.enc"
    await wait_for_condition(lambda: path.stat().st_size > 150_000, timeout_s=20,
                             what="the recorder sealing chunks")
    # During recording: only ciphertext in the recordings dir, nothing in the temp dir.
    assert _files_containing(rec_dir, [EBML_MAGIC, known_frame], start) == []
    assert _files_containing(Path(tempfile.gettempdir()), [known_frame], start, pytest_trees, tmp_path) == []
    _feed(rec, packets[half:])
    info = await rec.close()
    assert await rec.close() == info  # idempotent
    assert _files_containing(rec_dir, [EBML_MAGIC, known_frame], start) == []
    assert _files_containing(Path(tempfile.gettempdir()), [known_frame], start, pytest_trees, tmp_path) == []
    assert os.listdir(rec_dir) == ["p1.webm.enc"]

    assert isinstance(info, RecordingFileInfo) and info.error == ""
    assert info.video_frames == 180 and info.audio_packets >= 295 and info.dropped_packets == 0
    assert (info.width, info.height) == (640, 480)
    webm = decrypt_file(path, key)
    assert webm[:4] == EBML_MAGIC
    frames, samples, size = _decode_counts(webm)
    assert abs(frames - 180) <= 9 and size == (640, 480)
    assert abs(samples / 48000 - 6.0) <= 0.3  # audio present, ~6 s
    ts = _demux(webm)
    video_s = (ts["video"][-1][0] - ts["video"][0][0]) / 1000 + 1 / FPS
    assert abs(video_s - 6.0) <= 0.3
    assert ts["video"][0][1], "video must start at a keyframe"
    # Audio and video aligned by arrival: both start within one frame of time zero.
    assert ts["video"][0][0] <= 40 and ts["audio"][0][0] <= 40
    for kind in ("video", "audio"):
        dts = [t for t, _ in ts[kind]]
        assert all(b > a for a, b in itertools.pairwise(dts)), f"{kind} not monotonic"
    assert calls  # a keyframe was requested at start


async def test_pause_resume_monotonic_without_gap(tmp_path: Path) -> None:
    key = DataKey.generate()
    packets = packet_sequence(6.0)
    calls: list[int] = []
    rec = _recorder(tmp_path / "p.enc", key, calls)
    first = [p for p in packets if p.arrival < 1002.0]
    paused = [p for p in packets if 1002.0 <= p.arrival < 1004.0]
    after = [p for p in packets if p.arrival >= 1004.0]
    _feed(rec, first)
    rec.pause()
    _feed(rec, paused)  # dropped: nobody is recorded while paused
    requests_before = len(calls)
    rec.resume()
    assert len(calls) == requests_before + 1  # video restarts at a keyframe
    _feed(rec, after)
    info = await rec.close()
    assert info.video_frames == len([p for p in first + after if p.kind == "video"])
    ts = _demux(decrypt_file(tmp_path / "p.enc", key))
    for kind in ("video", "audio"):
        t = [x for x, _ in ts[kind]]
        assert all(b > a for a, b in itertools.pairwise(t)), f"{kind} DTS went backwards"
        assert max(b - a for a, b in itertools.pairwise(t)) <= 100, f"{kind} jumped"
        assert abs(t[-1] / 1000 - 4.0) <= 0.2  # 2 s + 2 s recorded, the pause removed
    resumed_at = len([p for p in first if p.kind == "video"])
    assert ts["video"][resumed_at][1], "video after resume starts at a keyframe"
    assert not ts["video"][resumed_at + 1][1]


async def test_video_waits_for_keyframe_and_requests_one(tmp_path: Path) -> None:
    key = DataKey.generate()
    packets = [p for p in packet_sequence(3.0) if p.arrival >= 1000.5]  # starts mid-GOP
    calls: list[int] = []
    rec = _recorder(tmp_path / "p.enc", key, calls)
    _feed(rec, packets)
    info = await rec.close()
    assert len(calls) >= 2  # at start, and again while deltas arrive (rate-limited)
    assert len(calls) <= 4
    assert info.video_frames == 30  # the keyframe at 2 s and the 29 deltas after it
    ts = _demux(decrypt_file(tmp_path / "p.enc", key))
    assert ts["video"][0][1]
    assert ts["audio"][0][0] < ts["video"][0][0]  # audio kept while video waited


async def test_empty_recording_is_a_valid_file(tmp_path: Path) -> None:
    key = DataKey.generate()
    rec = _recorder(tmp_path / "p.enc", key, [])
    info = await rec.close()
    assert info.video_frames == 0 and info.error == ""
    assert decrypt_file(tmp_path / "p.enc", key)[:4] == EBML_MAGIC


def test_timeline_wrap_jump_and_monotonic() -> None:
    tl = Timeline()
    tb = Fraction(1, 90000)
    assert tl.out_ms("v", 2**32 - 3000, tb, 10.0) == 0
    assert tl.out_ms("v", 0, tb, 10.033) == 33  # wrap: rebased on arrival
    assert tl.out_ms("v", 3000, tb, 10.066) == 66
    assert tl.out_ms("v", 3000 + 90000 * 13 * 3600, tb, 10.1) == 100  # 13-hour jump
    assert tl.out_ms("v", 3000 + 90000 * 13 * 3600, tb, 10.1) == 101  # never repeats
    assert tl.rebases == 2
    tl.resume()
    assert tl.out_ms("v", 9_999_999, tb, 500.0) == 120  # continues after 20 ms, no jump


def test_vp8_keyframe_size() -> None:
    vp8 = encoded_vp8(6.0)
    assert vp8_keyframe_size(vp8[0]) == (640, 480)
    assert vp8_keyframe_size(vp8[1]) is None
