"""E2EE calls of Python participants through the real app (in-process, real aiortc, real SFU):
frames cross and decrypt for 2 and 3 parties; what the SFU forwards does not decode; no key
material reaches the server's WebSocket input, HTTP bodies, logs or store; after a removal
the removed participant's old keys open nothing new."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from client.e2ee import E2eeSession
from client.media import PreparedMedia
from client.peer import MediaOptions
from server.recording.e2ee_format import FrameError, frame_key_id, open_frame
from server.signalling.connection import SignallingConnection
from tests.helpers.e2ee_call import E2eeCall, e2ee_call
from tests.helpers.inprocess_server import InProcessServer, inprocess_server
from tests.helpers.recording_media import vp8_pictures
from tests.helpers.waiting import wait_for_condition


@pytest.fixture(scope="module")
def prepared() -> PreparedMedia:
    return PreparedMedia.build(seconds=2.0, gop=15)


@pytest.fixture
def ws_inbound(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every WebSocket text the server's connections receive, as received."""
    seen: list[str] = []
    original = SignallingConnection.handle_text

    async def capture(self: SignallingConnection, text: str) -> None:
        seen.append(text)
        await original(self, text)

    monkeypatch.setattr(SignallingConnection, "handle_text", capture)
    return seen


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcessServer]:
    with inprocess_server(tmp_path, e2ee_policy="required") as running:
        yield running


@pytest.fixture
async def call(server: InProcessServer, prepared: PreparedMedia, ws_inbound: list[str],
               caplog: pytest.LogCaptureFixture) -> AsyncIterator[E2eeCall]:
    caplog.set_level(logging.DEBUG)  # every log record of the key exchange is searched
    creds = server.create_doctor("dr.e2ee@example.test")
    async with e2ee_call(server, creds, MediaOptions(prepared=prepared, decode=True)) as started:
        yield started


def key_material(sessions: list[E2eeSession]) -> list[bytes]:
    keys: list[bytes] = []
    for session in sessions:
        keys += [key for _id, key in session.key_history]
        for peer in session.peers.values():
            keys += [key for key in session.received_keys(peer.pid).values()]
            if peer.pair is not None:
                keys.append(peer.pair)
            if peer.secret is not None:
                keys.append(peer.secret)
    return keys


def encodings(key: bytes) -> list[bytes]:
    return [key, key.hex().encode(), base64.b64encode(key).rstrip(b"="),
            base64.urlsafe_b64encode(key).rstrip(b"=")]


def faithful_pictures(tapped: list[bytes], keys: dict[int, bytes]) -> tuple[int, int]:
    """(pictures decoded from the plaintext, tapped frames whose picture matches the plaintext's):
    libvpx may take a ciphertext for a (garbage) frame, never for the real picture."""
    start = next(i for i, f in enumerate(tapped) if f[0] & 1 == 0)  # a keyframe (clear byte)
    sealed = tapped[start:]
    plain = [open_frame("video", f, keys[frame_key_id(f) or 0]) for f in sealed]
    truth, seen = vp8_pictures(plain), vp8_pictures(sealed)
    return (sum(1 for t in truth if t is not None),
            sum(1 for t, s in zip(truth, seen, strict=True) if s is not None and s == t))


async def test_two_party_frames_decrypt_and_the_sfu_cannot_decode_them(
        server: InProcessServer, call: E2eeCall, ws_inbound: list[str],
        caplog: pytest.LogCaptureFixture) -> None:
    tapped: list[bytes] = []

    def tap(publisher: str, label: str, data: bytes) -> bytes:
        if label == "video" and publisher == call.host.participant_id:
            tapped.append(data)
        return data

    await call.wait_media_everywhere(frames=10)
    assert call.host.e2ee is not None and call.patient.e2ee is not None
    assert call.host.e2ee.mode == call.patient.e2ee.mode == "e2ee"
    assert call.patient.e2ee.peers["host"].verified and call.host.e2ee.peers[
        call.patient.participant_id].verified
    assert call.patient.e2ee.safety_code() == call.host.e2ee.safety_code()
    server.set_frame_tap(call.cid, tap)
    stats = call.patient.media.stats_from("host", "video")
    assert stats is not None
    before = stats.frames
    await wait_for_condition(lambda: len(tapped) >= 60 and stats.frames >= before + 60,
                             timeout_s=20, what="60 tapped and decrypted frames")
    server.set_frame_tap(call.cid, None)
    # the SFU forwards E2EE frames: every one carries the trailer and a key id
    assert all(frame_key_id(f) is not None for f in tapped)
    decoded_plain, faithful = faithful_pictures(tapped, dict(call.host.e2ee.key_history))
    assert decoded_plain >= 30 and faithful == 0
    # the patient's decrypted frames decode (FrameDecoder: libvpx), with no decoder error
    assert stats.decode_errors == 0 and stats.last_picture is not None
    assert stats.last_picture.width == 640
    assert call.patient.e2ee.dropped_auth == 0
    # key material is nowhere the server could read it
    keys = key_material([call.host.e2ee, call.patient.e2ee])
    assert len(keys) >= 4
    logged = [r.getMessage().encode()
              for r in [*caplog.get_records("setup"), *caplog.records]]  # the call began in setup
    assert any(b"e2ee mode" in line for line in logged)  # the server's own records are in there
    haystacks = [t.encode() for t in ws_inbound] + server.http_bodies + server.store_dump() + logged
    assert any(b'"kind":"key"' in h.replace(b" ", b"") for h in haystacks)  # we did look at them
    for key in keys:
        for form in encodings(key):
            assert not any(form in h for h in haystacks), "key material reached the server"


async def test_three_parties_then_a_removed_guest_cannot_open_what_follows(
        server: InProcessServer, prepared: PreparedMedia) -> None:
    creds = server.create_doctor("dr.three@example.test")
    async with e2ee_call(server, creds, MediaOptions(prepared=prepared), guests=1) as call:
        await call.wait_media_everywhere(frames=10)
        host, patient, guest = call.host, call.patient, call.guests[0]
        assert host.e2ee and patient.e2ee and guest.e2ee
        # the guest's key reached the patient through the host's vouch, verified
        assert patient.e2ee.peers[guest.participant_id].verified
        assert guest.e2ee.peers[patient.participant_id].verified
        codes = {c.e2ee.safety_code() for c in call.everyone if c.e2ee is not None}
        assert len(codes) == 1
        old_keys = {sender: guest.e2ee.received_keys(sender)
                    for sender in (host.participant_id, patient.participant_id)}
        old_ids = {sender: set(keys) for sender, keys in old_keys.items()}
        await host.send({"v": 1, "type": "remove", "participant_id": guest.participant_id})
        await wait_for_condition(
            lambda: all(c.e2ee is not None and c.e2ee.current_key_id not in old_ids[c.participant_id]
                        for c in (host, patient)),
            timeout_s=10, what="host and patient switched to new keys")
        tapped: list[tuple[str, str, bytes]] = []

        def tap(publisher: str, label: str, data: bytes) -> bytes:
            tapped.append((publisher, label, data))
            return data

        server.set_frame_tap(call.cid, tap)
        await wait_for_condition(lambda: len(tapped) >= 120, timeout_s=20, what="frames after removal")
        server.set_frame_tap(call.cid, None)
        # frames still in flight when the tap went in may carry the old key (sent before the
        # rekey); from each track's first new-key frame on, the guest's old keys open nothing
        switched: set[tuple[str, str]] = set()
        after = opened = 0
        for publisher, label, data in tapped:
            key_id = frame_key_id(data)
            assert key_id is not None  # still E2EE
            if key_id not in old_ids[publisher]:
                switched.add((publisher, label))
            if (publisher, label) not in switched:
                continue
            after += 1
            for key in old_keys[publisher].values():  # every old key, whatever the key id says
                try:
                    open_frame("audio" if label == "audio" else "video", data, key)
                    opened += 1
                except FrameError:
                    pass
        assert {p for p, _label in switched} == set(old_ids) and after >= 100
        assert opened == 0
        # the two who stayed still decrypt each other
        stats = patient.media.stats_from(host.participant_id, "video")
        assert stats is not None
        now = stats.frames
        await wait_for_condition(lambda: stats.frames >= now + 30, timeout_s=10,
                                 what="patient still decrypts the host")


async def test_a_tampering_sfu_is_dropped_and_counted_and_video_recovers(
        server: InProcessServer, call: E2eeCall) -> None:
    await call.wait_media_everywhere(frames=10)
    patient = call.patient
    assert patient.e2ee is not None
    flipped = 0

    def tamper(publisher: str, label: str, data: bytes) -> bytes:
        nonlocal flipped
        if publisher != "host" or label != "video" or flipped >= 30:
            return data
        flipped += 1
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]

    decoder = patient.media._decoders[("host", "video")]
    server.set_frame_tap(call.cid, tamper)
    await wait_for_condition(lambda: flipped >= 30, timeout_s=10, what="30 tampered frames")
    keyframes, decoded = decoder.keyframes, decoder.decoded
    await wait_for_condition(lambda: patient.e2ee is not None and patient.e2ee.dropped_auth >= 30,
                             timeout_s=10, what="30 frames dropped as unauthentic")
    await wait_for_condition(lambda: decoder.keyframes > keyframes and decoder.decoded >= decoded + 30,
                             timeout_s=10, what="video decoding again from the next keyframe")
    server.set_frame_tap(call.cid, None)
    assert patient.e2ee.dropped_auth == 30
    assert decoder.errors == 0  # nothing tampered reached the decoder
    assert patient.media.errors == [] and call.host.media.errors == []


async def test_a_substituted_host_key_is_refused_by_the_patient(
        server: InProcessServer, prepared: PreparedMedia, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from server.recording.e2ee_format import b64e, public_raw
    from server.signalling.e2ee import E2eeCoordinator

    attacker = b64e(public_raw(ec.generate_private_key(ec.SECP256R1()).public_key()))
    original = E2eeCoordinator.relay
    substituted = 0

    async def mitm(self: E2eeCoordinator, cid: str, lobby: object, sender: object,
                   message: dict[str, object]) -> None:
        nonlocal substituted
        body = message.get("body")
        if isinstance(body, dict) and body.get("kind") == "announce" and body.get("role") == "host":
            substituted += 1
            message = {**message, "body": {**body, "pub": attacker}}
        await original(self, cid, lobby, sender, message)  # type: ignore[arg-type]

    monkeypatch.setattr(E2eeCoordinator, "relay", mitm)
    creds = server.create_doctor("dr.mitm@example.test")
    async with e2ee_call(server, creds, MediaOptions(prepared=prepared)) as call:
        patient, host = call.patient, call.host
        await wait_for_condition(lambda: patient.e2ee_refusal is not None, timeout_s=10,
                                 what="the patient refuses the substituted key")
        assert substituted >= 1
        assert "could not be verified" in (patient.e2ee_refusal or "")
        assert patient.e2ee is not None and host.e2ee is not None
        await wait_for_condition(lambda: patient.e2ee is not None and patient.e2ee.dropped_unsent >= 60,
                                 timeout_s=10, what="the patient withholds 60 frames")
        assert host.e2ee.received_keys(patient.participant_id) == {}  # no key went to the host
        assert host.media.frames_from(patient.participant_id, "video") == 0
        assert patient.e2ee.frames_sealed == 0
