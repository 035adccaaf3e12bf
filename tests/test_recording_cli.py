"""`teleconsult recordings …` and `teleconsult keys rotate`, run as the real CLI in a subprocess
on recordings made with RecordingSession over the real SQLite store of the data directory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import pytest

from server.clock import ManualClock
from server.recorder.session import RecordingSession
from server.recording.keys import DataKeyDestroyed, Keyring, RecordingKeys
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_media import FPS, packet_sequence
from tests.helpers.server_process import run_cli, server_env

SECONDS = 3.0


async def _make_recording(tmp_path: Path, clock: ManualClock, cid: str) -> str:
    store = await SQLiteStore.open(tmp_path / "data" / "teleconsult.sqlite3")
    try:
        keys = RecordingKeys(store, Keyring.load_or_create(tmp_path / "data" / "kek.json", clock),
                             clock)
        session = await RecordingSession.start(
            store=store, keys=keys, recordings_dir=tmp_path / "recordings", consultation_id=cid,
            clock=clock, request_keyframe=lambda _pid: None)
        rec = session.add_participant("doc")
        for p in packet_sequence(SECONDS):
            rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]
        await session.stop()
        return session.recording_id
    finally:
        await store.close()


def _cli(env: dict[str, str], *args: str) -> str:
    done = run_cli(list(args), env)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _check_playable(path: Path) -> None:
    with av.open(str(path)) as container:
        assert container.streams.audio, "no audio stream"
        video = audio = 0
        last_video_s = 0.0
        for packet in container.demux():
            if packet.pts is None:
                continue
            if packet.stream.type == "audio":
                audio += 1
            elif packet.stream.type == "video":
                video += 1
                last_video_s = max(last_video_s, float(packet.pts * packet.time_base))
        container.seek(0)
        decoded = sum(1 for _ in container.decode(video=0))
    fed = int(SECONDS * FPS)
    assert abs(decoded - fed) <= 0.05 * fed, (decoded, fed)
    assert abs(video - fed) <= 0.05 * fed, (video, fed)
    duration = last_video_s + 1 / FPS
    assert abs(duration - SECONDS) <= 0.05 * SECONDS, duration
    fed_audio = int(SECONDS / 0.02)
    assert abs(audio - fed_audio) <= 0.05 * fed_audio, (audio, fed_audio)


async def _audit_actions(tmp_path: Path) -> list[dict[str, object]]:
    store = await SQLiteStore.open(tmp_path / "data" / "teleconsult.sqlite3")
    try:
        return [json.loads(r.body) for r in await store.audit_records(0, 10_000)]
    finally:
        await store.close()


async def test_list_export_rotate_delete_purge(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    old_clock = ManualClock(time.time() - 40 * 86400)
    old = await _make_recording(tmp_path, old_clock, "c-old")
    new = await _make_recording(tmp_path, ManualClock(time.time()), "c-new")
    assert oct((tmp_path / "data" / "kek.json").stat().st_mode & 0o777) == "0o600"

    rows = [json.loads(line) for line in _cli(env, "recordings", "list", "--json").splitlines()]
    assert [(r["id"], r["consultation_id"], r["state"]) for r in rows] == [
        (old, "c-old", "stopped"), (new, "c-new", "stopped")]

    _cli(env, "recordings", "export", new, "--out", str(tmp_path / "out1"))
    _check_playable(tmp_path / "out1" / "001-doc.webm")
    manifest = json.loads((tmp_path / "out1" / "manifest.json").read_text())
    assert manifest["recording_id"] == new

    # rotation: every recording still exports, the old KEK is gone from the keyring
    old_kek = Keyring.load(tmp_path / "data" / "kek.json").current.kek_id
    out = _cli(env, "keys", "rotate")
    assert "2 data key(s) re-wrapped" in out
    ring = Keyring.load(tmp_path / "data" / "kek.json")
    assert old_kek not in ring.kek_ids and len(ring.kek_ids) == 1
    for rid, dest in ((old, "out2"), (new, "out3")):
        _cli(env, "recordings", "export", rid, "--out", str(tmp_path / dest))
        _check_playable(tmp_path / dest / "001-doc.webm")

    # delete: the data key is destroyed; the ciphertext (a "backup") stays undecryptable
    backup = (tmp_path / "recordings" / new / "001-doc.webm.enc").read_bytes()
    _cli(env, "recordings", "delete", new)
    assert not (tmp_path / "recordings" / new).exists()
    store = await SQLiteStore.open(tmp_path / "data" / "teleconsult.sqlite3")
    try:
        keys = RecordingKeys(store, Keyring.load(tmp_path / "data" / "kek.json"), old_clock)
        with pytest.raises(DataKeyDestroyed):
            await keys.get(new)
        assert await store.get_doc("recording_key", new) is None
    finally:
        await store.close()
    assert backup and b"\x1a\x45\xdf\xa3" not in backup[:4096]  # only ciphertext on disk
    failed = run_cli(["recordings", "export", new, "--out", str(tmp_path / "out4")], env)
    assert failed.returncode == 1 and "no recording" in failed.stderr

    # purge: only the recording past the 30-day retention goes
    assert "purged 1 recording(s)" in _cli(env, "recordings", "purge")
    assert _cli(env, "recordings", "list", "--json") == ""
    assert not (tmp_path / "recordings" / old).exists()

    entries = await _audit_actions(tmp_path)
    acts = [(e["action"], e.get("target", {}).get("id"), e["outcome"]) for e in entries  # type: ignore[union-attr]
            if str(e["action"]).startswith(("recording.", "keys."))]
    assert acts == [
        ("recording.export", new, "ok"), ("keys.rotate", None, "ok"),
        ("recording.export", old, "ok"), ("recording.export", new, "ok"),
        ("recording.delete", new, "ok"), ("recording.export", new, "failed"),
        ("recording.purge", old, "ok"), ("recording.purge_run", None, "ok")]
    assert all(e["actor"] == "cli" for e in entries if str(e["action"]).startswith("recording."))
