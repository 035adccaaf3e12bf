"""Recording with every participant's consent, in a real call: aiortc participants through the
SFU gateway wrapped by the recording gateway (the seam the WebSocket uses), real SQLite store,
keys and audit log. Nothing is written until everyone present consents; a joiner pauses the
writing until they consent; one withdrawal stops it for everybody."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from server.errors import Conflict, Forbidden
from server.recording.consent import consent_text
from server.recording.crypto import DEFAULT_CHUNK_SIZE
from server.store.sqlite import SQLiteStore
from tests.helpers.recording_call_helpers import TEXT_VERSION, recording_harness
from tests.helpers.sfu_peers import LocalPeer
from tests.helpers.waiting import wait_for_condition

CID = "c_rec1"


async def _bytes_sent(peer: LocalPeer) -> int:
    """RTP bytes (audio and video) this participant's connection has sent: its outbound stats."""
    stats = await peer.pc.getStats()
    return sum(s.bytesSent for s in stats.values() if s.type == "outbound-rtp")


def _enc_files(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in root.rglob("*.enc")} if root.exists() else {}


async def _state(peers: list[LocalPeer], state: str) -> None:
    await wait_for_condition(lambda: all(p.last_state() == state for p in peers), timeout_s=5,
                             what=f"recording-state {state} on every screen")


async def test_consent_gates_writing_pause_on_join_withdraw_stops_all(
        sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    async with recording_harness(sqlite_store, tmp_path) as h:
        host = await h.join(CID, "host")
        p1 = await h.join(CID, "p_one")
        controller = h.gateway.controller(CID)
        assert controller is not None
        await _state([host, p1], "off")

        # only the host may ask (the connection turns this into an `error` message)
        with pytest.raises(Forbidden):
            await p1.send("record-request")
        assert controller.machine.request_id is None

        await host.send("record-request")
        await wait_for_condition(lambda: len(p1.prompts()) == 1, timeout_s=5, what="prompt")
        prompt = p1.prompts()[0]
        assert prompt["text_version"] == TEXT_VERSION and prompt["lang"] == "en"
        assert prompt["text"] == consent_text(TEXT_VERSION, "en")
        assert host.prompts() == []  # the request is the host's own consent
        await p1.send("language", lang="fr")  # the prompt again, in French
        await wait_for_condition(lambda: len(p1.prompts()) == 2, timeout_s=5, what="fr prompt")
        assert p1.prompts()[1]["text"] == consent_text(TEXT_VERSION, "fr")
        await _state([host, p1], "waiting")
        # media flows, but nothing is written (no session, no file) before everyone said yes
        await wait_for_condition(lambda: host.frames_from("p_one", "video") > 20, timeout_s=10,
                                 what="media flowing")
        assert controller.session is None and _enc_files(h.recordings_dir) == {}

        await p1.send("consent", answer="yes", request_id=prompt["request_id"],
                      text_version=TEXT_VERSION)
        await _state([host, p1], "recording")
        session = controller.session
        assert session is not None
        sdir = session.directory
        # Each file holds what its participant sent since the recording started (at least half
        # of those RTP bytes: headers, the unsealed last chunk and the batch in flight are not
        # on disk), once that is an encrypted chunk. Derived from what was sent, not from a
        # fixed size: how well a picture compresses is the encoder's business (the test's moving
        # bar is about 5 kB/s, so a chunk takes some 14 s: two took 28 s of a 30 s bound).
        sent_at_start = {p.participant_id: await _bytes_sent(p) for p in (host, p1)}
        last: dict[str, tuple[int, int]] = {}

        async def files_hold_what_was_sent() -> bool:
            files = _enc_files(sdir)
            held = len(files) == 2
            for peer in (host, p1):
                since = await _bytes_sent(peer) - sent_at_start[peer.participant_id]
                size = sum(n for name, n in files.items() if name.endswith(f"-{peer.participant_id}.webm.enc"))
                last[peer.participant_id] = (since, size)
                held = held and since >= DEFAULT_CHUNK_SIZE and size >= since // 2
            return held

        await wait_for_condition(files_hold_what_was_sent, timeout_s=45, interval_s=0.5,
                                 what="both participants' files hold what they sent",
                                 seen=lambda: f"(sent since start, file bytes) {last}")
        host_video = h.sfu.rooms[CID].participants()[0].published["video"]
        assert host_video.keyframe_requests_sent >= 1  # recorder start asked for a keyframe

        # a third participant joins: prompted; writing pauses on every screen until they agree
        p2 = await h.join(CID, "p_two")
        await wait_for_condition(lambda: len(p2.prompts()) == 1, timeout_s=5, what="p2 prompt")
        await _state([host, p1, p2], "paused")
        assert session.state.value == "paused"
        assert all(r.state.value == "paused"
                   for r in (session.recorder("host"), session.recorder("p_one"),
                             session.recorder("p_two")) if r is not None)
        await p2.send("consent", answer="yes")  # request id / version default to the prompt's
        await _state([host, p1, p2], "recording")
        await wait_for_condition(lambda: len(_enc_files(sdir)) == 3, timeout_s=5,
                                 what="p2's file")

        # one withdrawal stops it for everybody at once
        await p1.send("consent-withdraw")
        await _state([host, p1, p2], "off")
        assert controller.session is None
        manifest = session.manifest()
        assert manifest["stopped_at"] is not None and len(manifest["pauses"]) == 1
        assert sorted(p["id"] for p in manifest["participants"]) == ["host", "p_one", "p_two"]
        await wait_for_condition(lambda: session.state.value == "stopped", timeout_s=5,
                                 what="stopped")
        with pytest.raises(Conflict):
            await p1.send("consent", answer="yes")  # no request any more
        assert controller.state == "off"

    # the stopped recording exports to playable files with audio and video
    results = await h.service.export(session.recording_id, tmp_path / "out")
    assert not any(r.truncated for r in results)
    with av.open(str(tmp_path / "out" / "001-host.webm")) as container:
        assert container.streams.audio and container.streams.video
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 20

    # evidence: every step, with the consent text version, in the record and the audit log
    events = await h.evidence.events(CID)
    assert [(e.participant_id, e.action) for e in events] == [
        ("host", "requested"), ("p_one", "prompted"), ("p_one", "granted"),
        ("p_two", "prompted"), ("p_two", "granted"), ("p_one", "withdrawn")]
    assert {e.text_version for e in events} == {TEXT_VERSION}
    record = json.loads(await h.evidence.export(CID))
    assert TEXT_VERSION in record["texts"] and len(record["events"]) == 6
    audit = [json.loads(r.body) for r in await sqlite_store.audit_records(0, 1000)]
    consent_audit = [(e["action"], e["target"]["participant"]) for e in audit
                     if e["action"].startswith("recording.consent_")]
    assert consent_audit[0] == ("recording.consent_requested", "host")
    assert consent_audit[-1] == ("recording.consent_withdrawn", "p_one")
    assert all(e["consultation_id"] == CID for e in audit
               if e["action"].startswith("recording.consent_"))
