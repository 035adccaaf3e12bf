"""Recording under E2EE through the real app (in-process) and the real CLI: without a
registered clinic key the host cannot ask to record; with one, the host's client escrows
every media key in use (every key change captured), the recorder stores the frames still
encrypted; `recordings export` fails naming --recording-key; the sealed bundle (server KEK
only) holds frames that do not decode; `recordings open` with the clinic's private key writes
WebMs that decode with av and hold, frame by frame (by a sequence number inside each
encrypted frame), what was sent while it recorded: in order, none twice, none invented, none
missing but for 5 %; audio too."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from client.media import PreparedMedia, SendLog, read_trailer
from client.peer import MediaOptions
from server.recording.e2ee_format import b64d, fingerprint, frame_key_id
from tests.helpers.e2ee_call import e2ee_call
from tests.helpers.inprocess_server import InProcessServer, inprocess_server
from tests.helpers.recording_media import vp8_pictures
from tests.helpers.server_process import run_cli, server_env
from tests.helpers.waiting import wait_for_condition

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcessServer]:
    with inprocess_server(tmp_path, e2ee_policy="required") as running:
        yield running


def webm_packets(data: bytes | Path) -> dict[str, list[av.Packet]]:  # type: ignore[type-arg]
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    out: dict[str, list[av.Packet]] = {"audio": [], "video": []}  # type: ignore[type-arg]
    with av.open(source) as container:
        for packet in container.demux():
            if packet.size:
                out[packet.stream.type].append(packet)
    return out


async def recording_docs_of(server: InProcessServer) -> list[dict[str, object]]:
    from server.api.keys import STORE
    return list(await server.app[STORE].list_docs("recording"))


def check_recorded_as_sent(packets: list[av.Packet], log: SendLog, publisher: str,  # type: ignore[type-arg]
                           started: float, stopped: float, *, what: str) -> None:
    """The stored frames are the frames `publisher` sent while the server recorded, each one
    once and in order, none invented and (but for 5 % the network may lose) none missing, by
    the sequence number each frame carries inside its encrypted payload. The first was sent
    near the start (video waits for a keyframe, 1 s apart here; a frame in flight at the start
    is kept), the last before the stop, and the stored timeline spans what they span."""
    seqs = [read_trailer(bytes(p)) for p in packets]
    assert seqs and None not in seqs, what
    numbers = [s for s in seqs if s is not None]
    assert numbers == sorted(set(numbers)), f"{what}: out of order or twice"
    sent = log.seqs_of(publisher)
    assert set(numbers) <= sent, f"{what}: frames never sent"
    between = {s for s in sent if numbers[0] <= s <= numbers[-1]}
    assert len(numbers) >= 0.95 * len(between), (what, len(numbers), len(between))
    first, last = log.sent[numbers[0]][1], log.sent[numbers[-1]][1]
    assert started - 1.5 <= first <= started + 1.5, (what, first - started)
    assert stopped - 1.5 <= last <= stopped + 0.05, (what, last - stopped)
    duration = float((packets[-1].pts - packets[0].pts) * packets[0].time_base)
    assert abs(duration - (last - first)) <= max(0.3, 0.05 * (last - first)), (what, duration, last - first)


async def test_recording_under_e2ee_escrow_export_sealed_and_open(
        server: InProcessServer, tmp_path: Path) -> None:
    env = server_env(tmp_path)
    (tmp_path / "pass").write_text(PASSPHRASE)
    keyfile = tmp_path / "clinic-recording-key.pem"
    made = run_cli(["keys", "recording-keypair", "--out", str(keyfile), "--passphrase-file",
                    str(tmp_path / "pass")], env)
    assert made.returncode == 0, made.stderr
    public = next(line.split(": ", 1)[1] for line in made.stdout.splitlines()
                  if line.startswith("public key: "))
    assert "BEGIN ENCRYPTED PRIVATE KEY" in keyfile.read_text()

    def recording_docs() -> Any:
        return lambda: recording_docs_of(server)

    prepared = PreparedMedia.build(seconds=2.0, gop=30)
    video_log, audio_log = SendLog(), SendLog()
    creds = server.create_doctor("dr.rec@example.test")
    options = MediaOptions(prepared=prepared, send_log=video_log, audio_send_log=audio_log)
    async with e2ee_call(server, creds, options, guests=1) as call:
        host, patient, guest = call.host, call.patient, call.guests[0]
        patient.auto_consent = guest.auto_consent = True
        await call.wait_media_everywhere(frames=5)
        # no clinic key registered: the host cannot ask
        await host.request_recording()
        await wait_for_condition(lambda: any(e.get("code") == "recording_key_missing"
                                             for e in host.errors), timeout_s=5,
                                 what="recording_key_missing")
        # in a thread: a blocking CLI run would stall the clients' event loop for a second,
        # and the backlog they then send in a burst would be what the recording starts with
        registered = await asyncio.to_thread(run_cli, ["keys", "recording-public-key", "set", public], env)
        assert registered.returncode == 0, registered.stderr
        await host.request_recording()
        await wait_for_condition(lambda: host.recording_state == "recording", timeout_s=10,
                                 what="recording")
        recording_seen = time.monotonic()
        state = next(m for m in reversed(host.messages) if m.get("type") == "recording-state")
        assert state["recording_key"]["pub"] == public
        # only the host may escrow keys
        await patient.send({"v": 1, "type": "recording-key", "sender": "host", "key_id": 1,
                            "epk": "x", "iv": "x", "ct": "x"})
        await wait_for_condition(lambda: any(e.get("code") == "forbidden" for e in patient.errors),
                                 timeout_s=5, what="forbidden")
        # a key change during the recording: the guest is removed, host and patient rekey
        await wait_for_condition(lambda: time.monotonic() - recording_seen > 3, timeout_s=5, what="3 s")
        assert host.e2ee is not None and patient.e2ee is not None
        keys_before = (len(host.e2ee.key_history), len(patient.e2ee.key_history))
        await host.send({"v": 1, "type": "remove", "participant_id": guest.participant_id})
        await wait_for_condition(
            lambda: host.e2ee is not None and patient.e2ee is not None
            and len(host.e2ee.key_history) > keys_before[0]
            and len(patient.e2ee.key_history) > keys_before[1], timeout_s=10, what="rekeys")
        await wait_for_condition(lambda: time.monotonic() - recording_seen > 7, timeout_s=10, what="7 s")
        await host.send({"v": 1, "type": "record-stop"})
        await wait_for_condition(lambda: host.recording_state == "off", timeout_s=10, what="off")
        host_keys = {(host.participant_id, kid): key for kid, key in host.e2ee.key_history}
        await wait_for_condition(lambda: [d["state"] for d in server.call(recording_docs())]
                                 == ["stopped"], timeout_s=15, what="recording stopped")
        doc = server.call(recording_docs())[0]
        rid = str(doc["id"])
        # What was sent while the server recorded: its own start and stop times (the server runs
        # in this process; its clock is the wall clock, the tracks' is the monotonic one), not
        # when the host heard of them, which lags on a loaded machine.
        wall_to_mono = time.monotonic() - time.time()
        started = float(doc["created_at"]) + wall_to_mono
        stopped = float(doc["stopped_at"]) + wall_to_mono
        publishers = {host.participant_id: host.media.name, patient.participant_id: patient.media.name}
        # the doctor's web download of an E2EE recording is the sealed bundle
        staff = call.apis[0]
        listed = await staff.get("/api/recordings")
        assert [r["e2ee"] for r in listed] == [True]
        async with staff.session.get(f"{staff.base_url}/api/recordings/{rid}/download") as got:
            assert got.status == 200 and got.content_type == "application/x-tar"
            downloaded = await got.read()
        with tarfile.open(fileobj=io.BytesIO(downloaded)) as tar:
            assert "bundle.json" in tar.getnames()
    assert doc["e2ee"] == {"recording_key_fingerprint": fingerprint(b64d(public))}

    # 1. a plain export fails clearly
    plain = run_cli(["recordings", "export", rid, "--out", str(tmp_path / "plain")], env)
    assert plain.returncode == 1 and "--recording-key" in plain.stderr
    assert not (tmp_path / "plain").exists()

    # 2. the sealed bundle: the server's KEK removed its layer; the frames still do not decode
    bundle = tmp_path / "sealed.tar"
    sealed = run_cli(["recordings", "export", rid, "--sealed", "--out", str(bundle)], env)
    assert sealed.returncode == 0, sealed.stderr
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile("bundle.json").read())  # type: ignore[union-attr]
        webms = {n: tar.extractfile(n).read() for n in names if n.endswith(".webm")}  # type: ignore[union-attr]
    assert "bundle.json" in names and len(webms) == 3
    used: set[tuple[str, int]] = set()
    sealed_video: dict[str, list[bytes]] = {}
    for name, data in webms.items():
        pid = name.split("-", 1)[1].removesuffix(".webm")
        packets = webm_packets(data)
        sealed_video[name] = [bytes(p) for p in packets["video"]]
        for kind in ("audio", "video"):
            for packet in packets[kind]:
                key_id = frame_key_id(bytes(packet))
                assert key_id is not None  # every stored frame is still E2EE
                used.add((pid, key_id))

    # 3. open with the clinic's private key
    opened_dir = tmp_path / "opened"
    opened = run_cli(["recordings", "open", str(bundle), "--recording-key", str(keyfile),
                      "--out", str(opened_dir), "--passphrase-file", str(tmp_path / "pass")], env)
    assert opened.returncode == 0, opened.stderr
    assert "without their key" not in opened.stdout
    # every key that encrypted a stored frame was escrowed (with its arrival time) ...
    escrowed = {(r["sender"], r["key_id"]) for r in index["escrow"]}
    assert used <= escrowed and all(r["received_at"] > 0 for r in index["escrow"])
    # ... including both rekeys of the removal, and the host's keys are the host's own
    assert len({k for k in escrowed if k[0] == "host"}) >= 2
    assert {k for k in escrowed if k[0] == "host"} <= {k for k in host_keys if k[0] == "host"}
    for name, stored in sealed_video.items():
        plain_packets = webm_packets(opened_dir / name)
        clear = [bytes(p) for p in plain_packets["video"]]
        assert len(clear) == len(stored)
        truth, seen = vp8_pictures(clear), vp8_pictures(stored)
        assert sum(1 for t in truth if t is not None) >= len(clear) - 1
        assert not any(s is not None and s == t for s, t in zip(seen, truth, strict=True))
        assert plain_packets["audio"], f"{name}: no audio"
        pid = name.split("-", 1)[1].removesuffix(".webm")
        if pid in publishers:
            for kind, log in (("video", video_log), ("audio", audio_log)):
                check_recorded_as_sent(plain_packets[kind], log, publishers[pid], started, stopped,
                                       what=f"{name} {kind}")

    # 4. both at once (where the store, the files and the private key all are)
    direct = run_cli(["recordings", "export", rid, "--recording-key", str(keyfile), "--out",
                      str(tmp_path / "direct"), "--passphrase-file", str(tmp_path / "pass")], env)
    assert direct.returncode == 0, direct.stderr
    assert sorted(p.name for p in (tmp_path / "direct").glob("*.webm")) == sorted(webms)
    # 5. a wrong passphrase is a clear error
    (tmp_path / "wrong").write_text("not the passphrase at all")
    wrong = run_cli(["recordings", "open", str(bundle), "--recording-key", str(keyfile),
                     "--out", str(tmp_path / "w"), "--passphrase-file", str(tmp_path / "wrong")], env)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
