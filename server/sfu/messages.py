"""Media messages as values: the client->server messages the SFU handles (parsed and validated
by server/signalling/media.py) and builders for the server->client messages it sends.

Every server->client message carries `"v": 1` and a `"type"`; see docs/sfu.md for the flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MEDIA_PROTOCOL_VERSION = 1
TRACK_LABELS = frozenset({"audio", "video", "screen"})


@dataclass(frozen=True)
class OfferMessage:
    """The browser's one offer, at join."""

    sdp: str


@dataclass(frozen=True)
class AnswerMessage:
    """The browser's answer to a server offer."""

    sdp: str


@dataclass(frozen=True)
class RenegotiateMessage:
    """Ask the server to offer: `publish` is what the browser wants to send from now on."""

    publish: frozenset[str]


@dataclass(frozen=True)
class MuteMessage:
    kind: str  # "audio" | "video" | "screen"
    muted: bool


@dataclass(frozen=True)
class LeaveMessage:
    pass


MediaMessage = OfferMessage | AnswerMessage | RenegotiateMessage | MuteMessage | LeaveMessage


@dataclass(frozen=True)
class TrackInfo:
    """A published track as others see it."""

    participant_id: str
    track_id: str
    kind: str  # label: "audio" | "video" | "screen"
    muted: bool

    def to_json(self) -> dict[str, Any]:
        return {"participant_id": self.participant_id, "track_id": self.track_id,
                "kind": self.kind, "muted": self.muted}


@dataclass(frozen=True)
class OutgoingTrackInfo:
    """Which publisher track an m-section (mid) of a server offer carries."""

    mid: str
    participant_id: str
    track_id: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {"mid": self.mid, "participant_id": self.participant_id,
                "track_id": self.track_id, "kind": self.kind}


def _message(message_type: str, /, **fields: Any) -> dict[str, Any]:
    return {"v": MEDIA_PROTOCOL_VERSION, "type": message_type, **fields}


def answer_message(sdp: str) -> dict[str, Any]:
    return _message("answer", sdp=sdp)


def offer_message(
    sdp: str, tracks: Sequence[OutgoingTrackInfo], receive: Mapping[str, str]
) -> dict[str, Any]:
    """`tracks`: what each sending mid carries; `receive`: mid -> label the browser should send
    on (e.g. the m-section added for a screen share)."""
    return _message("offer", sdp=sdp, tracks=[t.to_json() for t in tracks],
                    receive=dict(receive))


def participant_joined_message(participant_id: str, tracks: Sequence[TrackInfo]) -> dict[str, Any]:
    return _message("participant-joined", participant_id=participant_id,
                    tracks=[t.to_json() for t in tracks])


def participant_left_message(participant_id: str, track_ids: Sequence[str]) -> dict[str, Any]:
    return _message("participant-left", participant_id=participant_id, tracks=list(track_ids))


def track_published_message(track: TrackInfo) -> dict[str, Any]:
    return _message("track-published", participant_id=track.participant_id, track=track.to_json())


def track_unpublished_message(participant_id: str, track_id: str, kind: str) -> dict[str, Any]:
    return _message("track-unpublished", participant_id=participant_id, track_id=track_id, kind=kind)


def mute_state_message(participant_id: str, kind: str, muted: bool) -> dict[str, Any]:
    return _message("mute-state", participant_id=participant_id, kind=kind, muted=muted)


def error_message(code: str, message: str) -> dict[str, Any]:
    return _message("error", code=code, message=message)
