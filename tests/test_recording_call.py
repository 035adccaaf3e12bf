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
from server.store.sqlite import SQLiteStore
from tests.recording_call_helpers import TEXT_VERSION, GatewayPeer, recording_harness
from tests.waiting import wait_for_condition

CID = "c_rec1"


def _enc_files(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in root.rglob("*.enc")} if root.exists() else {}


async def _state(peers: list[GatewayPeer], state: str) -> None:
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
        await wait_for_condition(
            lambda: len(_enc_files(sdir)) == 2 and min(_enc_files(sdir).values()) > 100_000,
            timeout_s=15, what="both participants' files growing")
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
