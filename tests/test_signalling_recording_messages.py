"""The recording messages' wire format (docs/api.md "Recording"), in its one home."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.errors import InvalidInput
from server.recorder.controller import ConsentPromptNotice, RecordingStateNotice
from server.recording.e2ee_format import IV_BYTES, MEDIA_KEY_BYTES, TAG_BYTES, b64e
from server.recording.escrow import EscrowRecord
from server.signalling.recording_messages import (
    RECORDING_MESSAGE_TYPES,
    ConsentAnswer,
    ConsentLanguage,
    RecordingAction,
    parse_recording_message,
    recording_notice_message,
)


def test_client_messages_parse_into_frozen_values() -> None:
    expected = {"record-request", "record-stop", "consent", "consent-withdraw", "language",
                "recording-key"}
    assert expected == RECORDING_MESSAGE_TYPES
    for action in ("record-request", "record-stop", "consent-withdraw"):
        assert parse_recording_message({"v": 1, "type": action}) == RecordingAction(action)
    assert parse_recording_message({"v": 1, "type": "consent", "answer": "yes"}) == \
        ConsentAnswer("yes", None, None)
    assert parse_recording_message({"v": 1, "type": "consent", "answer": "no", "request_id": "r1",
                                    "text_version": "2026-11-1"}) == \
        ConsentAnswer("no", "r1", "2026-11-1")
    assert parse_recording_message({"v": 1, "type": "language", "lang": "fr"}) == ConsentLanguage("fr")
    assert parse_recording_message({"v": 1, "type": "language", "lang": 3}) == ConsentLanguage("")
    epk = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    escrow = {"v": 1, "type": "recording-key", "sender": "host", "key_id": 7, "epk": b64e(epk),
              "iv": b64e(bytes(IV_BYTES)), "ct": b64e(bytes(MEDIA_KEY_BYTES + TAG_BYTES))}
    assert parse_recording_message(escrow) == EscrowRecord("host", 7, escrow["epk"], escrow["iv"],
                                                           escrow["ct"])
    with pytest.raises(InvalidInput):
        parse_recording_message({**escrow, "epk": b64e(bytes(65))})  # not a P-256 point


@pytest.mark.parametrize("obj", [
    {"v": 1, "type": "consent"},
    {"v": 1, "type": "consent", "answer": True},
    {"v": 1, "type": "consent", "answer": "yes", "request_id": 7},
    {"v": 1, "type": "consent", "answer": "yes", "text_version": "x" * 65},
])
def test_bad_consent_messages_are_refused_with_invalid_field(obj: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_recording_message(obj)
    assert exc.value.code == "invalid_field"


def test_notices_become_the_documented_server_messages() -> None:
    assert recording_notice_message(RecordingStateNotice("paused")) == {
        "v": 1, "type": "recording-state", "state": "paused"}
    assert recording_notice_message(ConsentPromptNotice("r1", "2026-11-1", "fr", "Texte")) == {
        "v": 1, "type": "consent-prompt", "request_id": "r1", "text_version": "2026-11-1",
        "lang": "fr", "text": "Texte"}
