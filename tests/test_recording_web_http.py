"""Recordings over HTTP: list (own consultations; admins all), download (recent re-auth, decrypted
WebM streamed, nothing plaintext on disk, audited), delete (crypto-shredding, audited)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av

from server.clock import ManualClock
from server.config import Settings
from server.recorder.session import RecordingSession
from server.recording.keys import Keyring, RecordingKeys
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_media import FPS, packet_sequence
from tests.helpers.rooms_helpers import PASSWORD, create_consultation, http_env

EBML = b"\x1a\x45\xdf\xa3"


async def _record(store: SQLiteStore, clock: ManualClock, settings: Settings, cid: str) -> str:
    keys = RecordingKeys(store, Keyring.load(settings.kek_path), clock)
    session = await RecordingSession.start(
        store=store, keys=keys, recordings_dir=settings.recordings_dir, consultation_id=cid,
        clock=clock, request_keyframe=lambda _pid: None)
    for pid in ("host", "p1"):
        rec = session.add_participant(pid)
        for p in packet_sequence(2.0):
            rec.on_packet(p.kind, p.data, p.pts, p.time_base, p.keyframe, p.arrival)  # type: ignore[arg-type]
    await session.stop()
    return session.recording_id


def _plaintext_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.read_bytes()[:4] == EBML]


async def test_list_download_delete(sqlite_store: SQLiteStore, clock: ManualClock,
                                    settings: Settings, tmp_path: Path) -> None:
    async with http_env(sqlite_store, clock, settings) as env:
        assert settings.kek_path.exists()  # created at startup
        doc_a, ha = await env.staff("dr.a@example.test", "doctor")
        doc_b, hb = await env.staff("dr.b@example.test", "doctor")
        admin, _hadm = await env.staff("admin@example.test", "admin")
        anon, _ = await env.anonymous()
        cid_a = await create_consultation(doc_a, ha, label="a")
        cid_b = await create_consultation(doc_b, hb, label="b")
        rec_a = await _record(sqlite_store, clock, settings, cid_a)
        rec_b = await _record(sqlite_store, clock, settings, cid_b)
        account_a = (await (await doc_a.get(f"/api/consultations/{cid_a}")).json())["host_id"]

        assert (await anon.get("/api/recordings")).status == 401
        listed_a = await (await doc_a.get("/api/recordings")).json()
        assert [r["id"] for r in listed_a] == [rec_a]
        assert [f["name"] for f in listed_a[0]["files"]] == ["001-host.webm", "002-p1.webm"]
        assert [r["id"] for r in await (await doc_b.get("/api/recordings")).json()] == [rec_b]
        assert {r["id"] for r in await (await admin.get("/api/recordings")).json()} == {
            rec_a, rec_b}

        # someone else's recording: not found, like an unknown one
        assert (await doc_a.get(f"/api/recordings/{rec_b}/download")).status == 404
        assert (await doc_a.get("/api/recordings/rec-nope/download")).status == 404
        bad = await doc_a.get(f"/api/recordings/{rec_a}/download?file=../kek.json")
        assert bad.status == 400

        r = await doc_a.get(f"/api/recordings/{rec_a}/download?file=002-p1.webm")
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"] == "video/webm"
        assert r.headers["Cache-Control"] == "no-store"
        assert f'filename="{rec_a}-002-p1.webm"' in r.headers["Content-Disposition"]
        body = await r.read()
        assert body[:4] == EBML
        with av.open(io.BytesIO(body)) as container:
            assert container.streams.audio
            frames = sum(1 for _ in container.decode(video=0))
        assert abs(frames - 2 * FPS) <= 0.05 * 2 * FPS
        assert _plaintext_files(tmp_path) == []  # streamed from memory, never written

        # after the re-authentication window: refused until the doctor confirms again
        clock.advance(settings.reauth_window_s + 1)
        stale = await doc_a.get(f"/api/recordings/{rec_a}/download")
        assert stale.status == 403
        assert (await stale.json())["error"]["code"] == "reauth_required"
        assert (await doc_a.delete(f"/api/recordings/{rec_a}", headers=ha)).status == 403
        assert (await doc_a.post("/api/reauth", json={"password": PASSWORD},
                                 headers=ha)).status == 204
        again = await doc_a.get(f"/api/recordings/{rec_a}/download")
        assert again.status == 200 and (await again.read())[:4] == EBML

        # delete: CSRF-protected, crypto-shredded, gone from the list
        assert (await doc_a.delete(f"/api/recordings/{rec_a}")).status == 403  # no CSRF token
        assert (await doc_a.delete(f"/api/recordings/{rec_b}", headers=ha)).status == 404
        assert (await doc_a.delete(f"/api/recordings/{rec_a}", headers=ha)).status == 204
        assert await sqlite_store.get_doc("recording_key", rec_a) is None
        assert not (settings.recordings_dir / rec_a).exists()
        assert await (await doc_a.get("/api/recordings")).json() == []
        assert (await doc_a.get(f"/api/recordings/{rec_a}/download")).status == 404

        entries = [json.loads(e.body) for e in await sqlite_store.audit_records(0, 10_000)]
        mine = [(e["action"], e["actor"], e.get("target", {}).get("id"), e["consultation_id"])
                for e in entries if e["action"] in ("recording.download", "recording.delete")]
        assert mine == [("recording.download", account_a, rec_a, cid_a)] * 2 + [
            ("recording.delete", account_a, rec_a, cid_a)]
