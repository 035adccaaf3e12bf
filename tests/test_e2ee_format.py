"""The E2EE byte formats (server/recording/e2ee_format.py, client/e2ee.py): the committed test
vectors (tests/e2ee_vectors.json, shared with the browser side) still come out; frames keep
their clear prefix, open only with their key and reject any flipped byte; escrow wraps open
only with the clinic's private key; link fragments parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from client.e2ee import parse_fragment, patient_link
from server.recording.e2ee_format import (
    OVERHEAD,
    FrameError,
    FrameSealer,
    b64d,
    escrow_unwrap,
    escrow_wrap,
    frame_key_id,
    open_frame,
    public_raw,
)
from tests.helpers.e2ee_vectors import vectors

VECTORS = Path(__file__).with_name("e2ee_vectors.json")


def test_the_committed_vectors_still_come_out() -> None:
    assert vectors() == json.loads(VECTORS.read_text())


def test_frames_keep_the_clear_prefix_and_open_only_untouched() -> None:
    key = bytes(range(16))
    sealer = FrameSealer(7, key)
    keyframe = bytes([0x50]) + bytes(range(1, 60))
    delta = bytes([0x51]) + bytes(range(1, 60))
    for kind, plain, clear in (("video", keyframe, 10), ("video", delta, 3),
                               ("audio", b"\xfc" + bytes(30), 1), ("video", b"\x50\x01", 2)):
        sealed = sealer.seal(kind, plain)
        assert sealed[:clear] == plain[:clear] and len(sealed) == len(plain) + OVERHEAD
        assert frame_key_id(sealed) == 7 and sealed[-1] == 0xE1
        assert open_frame(kind, sealed, key) == plain
        for index in range(len(sealed) - 1):  # any flipped byte (clear prefix included) fails
            tampered = bytearray(sealed)
            tampered[index] ^= 0x01
            with pytest.raises(FrameError):
                open_frame(kind, bytes(tampered), key)
        with pytest.raises(FrameError):
            open_frame(kind, sealed, bytes(16))
    ivs = {sealer.seal("audio", b"\xfc\x00")[-17:-5] for _ in range(100)}
    assert len(ivs) == 100  # the counter never repeats an IV under one key
    assert frame_key_id(keyframe) is None


def test_escrow_opens_only_with_the_clinic_key() -> None:
    clinic = ec.generate_private_key(ec.SECP256R1())
    wrap = escrow_wrap(public_raw(clinic.public_key()), "c_1", "host", 42, bytes(range(16)))
    assert escrow_unwrap(clinic, "c_1", wrap) == bytes(range(16))
    with pytest.raises(FrameError):
        escrow_unwrap(ec.generate_private_key(ec.SECP256R1()), "c_1", wrap)
    with pytest.raises(FrameError):  # bound to consultation, sender and key id
        escrow_unwrap(clinic, "c_2", wrap)


def test_link_fragments() -> None:
    secret = bytes(range(16))
    link = patient_link("https://h/join#TOKEN", secret, "required")
    fragment = parse_fragment(link.split("#", 1)[1])
    assert (fragment.token, fragment.secret, fragment.required) == ("TOKEN", secret, True)
    assert parse_fragment("TOKEN.!!.r").secret is None  # a broken secret: unverified
    plain = parse_fragment("TOKEN")
    assert (plain.token, plain.secret, plain.required) == ("TOKEN", None, False)
    assert b64d(link.split(".")[-2]) == secret
