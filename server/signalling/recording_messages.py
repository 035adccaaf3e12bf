"""The recording messages on the WebSocket (protocol v1, docs/api.md "Recording"): the one home
of their wire format. Once in the call, client messages whose `type` is in
RECORDING_MESSAGE_TYPES are parsed here into frozen values:

- `record-request` {} (host): ask everyone present for consent;
- `record-stop` {} (host): stop;
- `consent` {answer: "yes"|"no", request_id?, text_version?}: answer the current prompt;
- `consent-withdraw` {}: withdraw (stops the recording for everyone);
- `language` {lang: "en"|"fr"}: the language of consent texts for this participant;
- `recording-key` {sender, key_id, epk, iv, ct} (host, E2EE): a media key wrapped to the
  clinic's recording key (docs/e2ee.md), shape-checked into an EscrowRecord (recording/escrow.py).

Server messages, built from the recorder's typed notices: `consent-prompt` {request_id,
text_version, lang, text}, `recording-state` {state: off|waiting|recording|paused,
recording_key?: {pub, fingerprint} (E2EE mode only)}.
Bad input raises InvalidInput `invalid_field` (the controller checks the values' meaning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from ..recorder.controller import RecordingNotice, RecordingStateNotice
from ..recording.escrow import EscrowRecord, parse_recording_key
from .envelope import server_message

RECORDING_ACTIONS = frozenset({"record-request", "record-stop", "consent-withdraw"})


@dataclass(frozen=True)
class RecordingAction:
    """A message without fields: the host asks or stops, a participant withdraws."""

    action: str  # "record-request" | "record-stop" | "consent-withdraw"


@dataclass(frozen=True)
class ConsentAnswer:
    answer: str
    request_id: str | None
    text_version: str | None


@dataclass(frozen=True)
class ConsentLanguage:
    lang: str  # "" when absent or not a string: the controller refuses it


RecordingMessage = RecordingAction | ConsentAnswer | ConsentLanguage | EscrowRecord
RECORDING_MESSAGE_TYPES = RECORDING_ACTIONS | {"consent", "language", "recording-key"}


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidInput(f"{name} must be a short string.", code="invalid_field")
    return value


def parse_recording_message(obj: Mapping[str, Any]) -> RecordingMessage:
    """One decoded message whose type is in RECORDING_MESSAGE_TYPES; InvalidInput if bad."""
    kind = obj.get("type")
    if kind in RECORDING_ACTIONS:
        return RecordingAction(str(kind))
    if kind == "consent":
        answer = obj.get("answer")
        if not isinstance(answer, str):
            raise InvalidInput('answer must be "yes" or "no".', code="invalid_field")
        return ConsentAnswer(answer, _optional_str(obj, "request_id"),
                             _optional_str(obj, "text_version"))
    if kind == "language":
        lang = obj.get("lang")
        return ConsentLanguage(lang if isinstance(lang, str) else "")
    if kind == "recording-key":
        return parse_recording_key(obj)
    raise InvalidInput("Unknown recording message type.", code="unknown_type")


def recording_notice_message(notice: RecordingNotice) -> dict[str, Any]:
    """The JSON message (protocol v1) for one notice of the recording controller."""
    if isinstance(notice, RecordingStateNotice):
        if notice.recording_key is None:
            return server_message("recording-state", state=notice.state)
        return server_message("recording-state", state=notice.state,
                              recording_key=dict(notice.recording_key))
    return server_message("consent-prompt", request_id=notice.request_id,
                          text_version=notice.text_version, lang=notice.lang, text=notice.text)

