"""Recording under E2EE with real Chromium pages (in-process server): the clinic's recording key
is made with `teleconsult keys recording-keypair` and registered; the doctor's page shows its
fingerprint next to Record (computed in the page from the key itself); the doctor records, the
patient consents; the doctor's page escrows every media key in use (its own and the patient's)
as `recording-key` messages that open with the clinic's private key; after the recording,
`recordings export --sealed` + `recordings open --recording-key` (the clinic's side) turn the
browser-encrypted frames into WebMs whose VP8 pictures decode with av and which carry audio.
The media keys themselves appear in no HTTP body, WebSocket message, store record or log line."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import av
import pytest
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import sync_playwright

from server.recording.e2ee_format import frame_key_id
from tests.helpers import e2ee_reference as ref
from tests.helpers.browser_helpers import chromium, wait_js
from tests.helpers.e2ee_browser_helpers import (
    WsTap,
    assert_media_decrypts,
    dashboard_link,
    doctor_in_call,
    e2ee_status,
    join_waiting,
    wait_e2ee_active,
)
from tests.helpers.inprocess_server import inprocess_server
from tests.helpers.journey_steps import admit
from tests.helpers.recording_media import vp8_pictures
from tests.helpers.server_process import run_cli, server_env

pytestmark = pytest.mark.browser

PASSPHRASE = "clinic offline passphrase 7"


def webm_frames(data: bytes) -> dict[str, list[bytes]]:
    """The frames of a WebM, by kind, as stored."""
    out: dict[str, list[bytes]] = {"audio": [], "video": []}
    with av.open(io.BytesIO(data)) as container:
        for packet in container.demux():
            if packet.size:
                out[packet.stream.type].append(bytes(packet))
    return out


def test_browser_escrow_lets_the_clinic_open_the_recording(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = server_env(tmp_path)
    (tmp_path / "pass").write_text(PASSPHRASE)
    keyfile = tmp_path / "clinic-recording-key.pem"
    made = run_cli(["keys", "recording-keypair", "--out", str(keyfile), "--passphrase-file", str(tmp_path / "pass")], env)
    assert made.returncode == 0, made.stderr
    public = next(line.split(": ", 1)[1] for line in made.stdout.splitlines() if line.startswith("public key: "))
    clinic = serialization.load_pem_private_key(keyfile.read_bytes(), PASSPHRASE.encode())
    with inprocess_server(tmp_path, e2ee_policy="required") as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            registered = run_cli(["keys", "recording-public-key", "set", public], env)
            assert registered.returncode == 0, registered.stderr
            doctor, doctor_watch, cid = doctor_in_call(browser, server)
            tap = WsTap(doctor)
            doctor.reload()
            wait_js(doctor, "window.teleconsult.state === 'in-call'", "doctor back in the call")
            patient, patient_watch = join_waiting(browser, dashboard_link(doctor, server.base_url), "Rita Record", "patient")
            admit(doctor, "Rita Record")
            wait_js(patient, "window.teleconsult.state === 'in-call'", "patient in the call")
            wait_e2ee_active(doctor, "doctor", peers=1)
            assert_media_decrypts(doctor, "doctor")

            wait_js(doctor, "!document.querySelector('#recording-key-fp').hidden", "the clinic key fingerprint beside Record")
            fp = ref.fingerprint(ref.unb64(public))
            assert doctor.get_attribute("#recording-key-fp", "data-fingerprint") == fp
            assert fp in doctor.text_content("#recording-key-fp")
            doctor.click("#btn-record")
            patient.wait_for_selector("#consent-yes", state="visible", timeout=15_000)
            patient.click("#consent-yes")
            wait_js(doctor, "!document.querySelector('#recording-indicator').hidden", "recording")
            own = int(doctor.evaluate("window.teleconsult.e2ee.keys.sendKeyId"))
            theirs = int(patient.evaluate("window.teleconsult.e2ee.keys.sendKeyId"))
            patient_id = str(patient.evaluate("window.teleconsult.participantId"))

            def escrowed() -> dict[tuple[str, int], bytes]:
                msgs = [m for m in tap.outbound if m.get("type") == "recording-key"]
                return {(m["sender"], m["key_id"]): ref.open_escrow(clinic, cid, m) for m in msgs}  # type: ignore[arg-type]

            wait_js(doctor, "(n) => window.teleconsult.e2ee.recordingKey && window.teleconsult.e2ee.recordingKey.sent >= n",
                    "the doctor's page escrowed its own key and the patient's", arg=2)
            keys = escrowed()
            assert ("host", own) in keys and (patient_id, theirs) in keys, sorted(keys)
            assert all(len(k) == 16 for k in keys.values())
            assert_media_decrypts(doctor, "doctor while recording", video_by=60)
            doctor.click("#btn-record-stop")
            wait_js(doctor, "document.querySelector('#recording-indicator').hidden", "recording stopped")
            status = e2ee_status(doctor)
            assert status["recordingKey"]["fingerprint"] == fp and status["recordingKey"]["matchesServer"]
            doctor_watch.assert_clean()
            patient_watch.assert_clean()

            # The media keys (known here only through the clinic's private key) appear in no HTTP
            # body, no WebSocket message as the server received it, no store record, no log line.
            keys = escrowed()
            assert len(keys) >= 2
            needles = [k for key in keys.values() for k in (key, ref.b64(key).encode(), key.hex().encode())]
            ws_text = "\n".join(json.dumps(m) for m in tap.outbound).encode()
            records = server.store_dump()
            logs = "\n".join(r.getMessage() for r in caplog.records).encode()
            assert caplog.records, "the server logged nothing: the log check would prove nothing"
            for needle in needles:
                assert not any(needle in body for body in server.http_bodies)
                assert needle not in ws_text
                assert not any(needle in value for value in records)
                assert needle not in logs
        finally:
            browser.close()

        listed = run_cli(["recordings", "list", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
        assert len(rows) == 1, rows
        rid = str(rows[0]["id"])
    bundle = tmp_path / "sealed.tar"
    sealed = run_cli(["recordings", "export", rid, "--sealed", "--out", str(bundle)], env)
    assert sealed.returncode == 0, sealed.stderr + sealed.stdout
    with tarfile.open(bundle) as tar:
        index = json.loads(tar.extractfile("bundle.json").read())  # type: ignore[union-attr]
        stored = {n: tar.extractfile(n).read() for n in tar.getnames() if n.endswith(".webm")}  # type: ignore[union-attr]
    senders = {r["sender"] for r in index["escrow"]}
    assert {"host", patient_id} <= senders, senders
    sealed: dict[str, list[bytes]] = {}
    for name, data in stored.items():
        frames = webm_frames(data)
        # still end-to-end encrypted: every stored frame is in the E2EE frame format (a VP8
        # decoder cannot tell: it makes some garbage picture of many sealed frames, 12 of 67 once)
        assert frames["video"] and all(frame_key_id(f) is not None for k in frames for f in frames[k]), name
        sealed[name] = frames["video"]
    opened_dir = tmp_path / "opened"
    opened = run_cli(["recordings", "open", str(bundle), "--recording-key", str(keyfile), "--out", str(opened_dir),
                      "--passphrase-file", str(tmp_path / "pass")], env)
    assert opened.returncode == 0, opened.stderr
    for name in stored:
        frames = webm_frames((opened_dir / name).read_bytes())
        clear, audio = frames["video"], len(frames["audio"])
        truth, seen = vp8_pictures(clear), vp8_pictures(sealed[name])
        pictures = sum(1 for t in truth if t is not None)
        print(name, "video frames", len(clear), "decoded pictures", pictures, "audio packets", audio)
        assert len(clear) > 20 and pictures >= len(clear) - 1 and audio > 20, (name, len(clear), pictures, audio)
        assert len(seen) == len(truth)  # the same frames, opened
        assert not any(s is not None and s == t for s, t in zip(seen, truth, strict=True)), name
