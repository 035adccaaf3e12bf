"""Client->server media messages (protocol version 1), validated at the boundary.

The WebSocket layer routes any message whose `type` is in MEDIA_MESSAGE_TYPES to
`participant.handle(parse_media_message(obj))` once the participant is admitted. Every message
carries `"v": 1`. Client messages:

- `offer` {sdp}: the browser's only offer, at join -> server `answer` {sdp}
- `answer` {sdp}: answer to a server `offer` {sdp, tracks: [{mid, participant_id, track_id,
  kind}], receive: {mid: label}}
- `renegotiate` {publish: ["audio", "video", "screen"]}: ask the server to offer (e.g. to add a
  screen share: the server's offer then lists the mid to send it on under `receive`)
- `mute` {kind: audio|video|screen, muted: bool}
- `leave` {}

Server messages (built in server/sfu/messages.py): `answer`, `offer`, `participant-joined`
{participant_id, tracks}, `participant-left` {participant_id, tracks: [track ids]},
`track-published` {participant_id, track}, `track-unpublished` {participant_id, track_id, kind},
`mute-state` {participant_id, kind, muted}, `error` {code, message}.

Bad input raises server.errors.InvalidInput with one of the codes: `unsupported_version`,
`unknown_type`, `missing_field`, `invalid_field`, `invalid_sdp`, `sdp_too_large`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.errors import InvalidInput
from server.sfu.messages import (
    MEDIA_PROTOCOL_VERSION,
    TRACK_LABELS,
    AnswerMessage,
    LeaveMessage,
    MediaMessage,
    MuteMessage,
    OfferMessage,
    RenegotiateMessage,
    error_message,
)

__all__ = [
    "MAX_SDP_BYTES",
    "MEDIA_MESSAGE_TYPES",
    "AnswerMessage",
    "LeaveMessage",
    "MediaMessage",
    "MuteMessage",
    "OfferMessage",
    "RenegotiateMessage",
    "error_message",
    "parse_media_message",
]

MEDIA_MESSAGE_TYPES = frozenset({"offer", "answer", "renegotiate", "mute", "leave"})
MAX_SDP_BYTES = 64 * 1024


def _field(obj: Mapping[str, Any], name: str) -> Any:
    if name not in obj:
        raise InvalidInput(f"The message lacks the field {name!r}.", code="missing_field")
    return obj[name]


def _sdp(obj: Mapping[str, Any]) -> str:
    sdp = _field(obj, "sdp")
    if not isinstance(sdp, str):
        raise InvalidInput("sdp must be a string.", code="invalid_sdp")
    if len(sdp.encode("utf-8", "surrogatepass")) > MAX_SDP_BYTES:
        raise InvalidInput(f"sdp is larger than {MAX_SDP_BYTES} bytes.", code="sdp_too_large")
    if not sdp.startswith("v=0") or "\x00" in sdp or "\nm=" not in sdp:
        raise InvalidInput("sdp is not an SDP description.", code="invalid_sdp")
    return sdp


def parse_media_message(obj: Mapping[str, Any]) -> MediaMessage:
    """Validate one decoded JSON object into a frozen media message; InvalidInput if bad."""
    if not isinstance(obj, Mapping):
        raise InvalidInput("A media message must be a JSON object.", code="invalid_field")
    if obj.get("v") != MEDIA_PROTOCOL_VERSION:
        raise InvalidInput("Unsupported media protocol version.", code="unsupported_version")
    kind = obj.get("type")
    if kind not in MEDIA_MESSAGE_TYPES:
        raise InvalidInput("Unknown media message type.", code="unknown_type")
    if kind == "offer":
        return OfferMessage(_sdp(obj))
    if kind == "answer":
        return AnswerMessage(_sdp(obj))
    if kind == "renegotiate":
        publish = _field(obj, "publish")
        if (not isinstance(publish, list) or len(publish) > len(TRACK_LABELS)
                or not all(isinstance(p, str) and p in TRACK_LABELS for p in publish)):
            raise InvalidInput("publish must list audio, video and/or screen.", code="invalid_field")
        return RenegotiateMessage(frozenset(publish))
    if kind == "mute":
        label = _field(obj, "kind")
        muted = _field(obj, "muted")
        if label not in TRACK_LABELS:
            raise InvalidInput("kind must be audio, video or screen.", code="invalid_field")
        if not isinstance(muted, bool):
            raise InvalidInput("muted must be true or false.", code="invalid_field")
        return MuteMessage(str(label), muted)
    return LeaveMessage()
