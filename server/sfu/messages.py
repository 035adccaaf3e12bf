"""What the SFU takes and gives, as typed values; no wire format.

Client -> SFU: the messages a participant sends (`MediaMessage`), parsed from JSON and validated
by server/signalling/media.py. SFU -> client: the events a participant is told
(`MediaEvent`), given to the `notify` callable of `SfuRoom.join`; server/signalling/media.py
turns each into its JSON message. See docs/sfu.md for the flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TRACK_LABELS = frozenset({"audio", "video", "screen"})


# -- client -> SFU ---------------------------------------------------------------------------

@dataclass(frozen=True)
class OfferMessage:
    """The browser's offer: once at join, and again from a new peer connection after a network
    change (`restart`: the server drops the participant's old peer connection for this one)."""

    sdp: str
    restart: bool = False


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


@dataclass(frozen=True)
class ReceiveVideoMessage:
    """The participant's own "audio only" choice: enabled=False stops the video sent to it."""

    enabled: bool


@dataclass(frozen=True)
class NetworkQualityMessage:
    """What the participant's browser measures of what it receives (getStats), to show the
    others: loss in %, round-trip time in ms, incoming bitrate in kbit/s."""

    loss_pct: float
    rtt_ms: float | None
    kbps_in: float | None


MediaMessage = (OfferMessage | AnswerMessage | RenegotiateMessage | MuteMessage | LeaveMessage
                | ReceiveVideoMessage | NetworkQualityMessage)


# -- SFU -> client ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackInfo:
    """A published track as others see it."""

    participant_id: str
    track_id: str
    kind: str  # label: "audio" | "video" | "screen"
    muted: bool


@dataclass(frozen=True)
class OutgoingTrackInfo:
    """Which publisher track an m-section (mid) of a server offer carries."""

    mid: str
    participant_id: str
    track_id: str
    kind: str


@dataclass(frozen=True)
class ServerAnswer:
    """The answer to the browser's offer."""

    sdp: str


@dataclass(frozen=True)
class ServerOffer:
    """`tracks`: what each sending mid carries; `receive`: mid -> label the browser should send
    on (e.g. the m-section added for a screen share)."""

    sdp: str
    tracks: tuple[OutgoingTrackInfo, ...]
    receive: Mapping[str, str]


@dataclass(frozen=True)
class ParticipantJoined:
    participant_id: str
    tracks: tuple[TrackInfo, ...]


@dataclass(frozen=True)
class ParticipantLeft:
    participant_id: str
    track_ids: tuple[str, ...]


@dataclass(frozen=True)
class TrackPublished:
    track: TrackInfo


@dataclass(frozen=True)
class TrackUnpublished:
    participant_id: str
    track_id: str
    kind: str


@dataclass(frozen=True)
class MuteState:
    participant_id: str
    kind: str
    muted: bool


@dataclass(frozen=True)
class ParticipantAway:
    """`away`: another participant's media stopped arriving, or its connection is gone and the
    SFU holds its place for it (docs/sfu.md "Reconnection"); not `away`: its media is back."""

    participant_id: str
    away: bool


@dataclass(frozen=True)
class MediaResumed:
    """To a participant that asked to resume (hello `resume`): True when the SFU still held its
    place (its tracks, keys and subscriptions carry on), False when it joins afresh."""

    resumed: bool


@dataclass(frozen=True)
class AudioOnly:
    """`participant_id` receives audio only (active) or video again; reason "bandwidth",
    "loss" (automatic, docs/sfu.md "Bandwidth") or "manual" (its own choice)."""

    participant_id: str
    active: bool
    reason: str


@dataclass(frozen=True)
class EncodingAdvice:
    """Ask a publisher to set these on its `label` sender's encoding (all None: restore)."""

    label: str
    max_bitrate_bps: int | None
    scale_resolution_down_by: float | None
    max_framerate: float | None


@dataclass(frozen=True)
class NetworkQuality:
    """A participant's NetworkQualityMessage, told to the others."""

    participant_id: str
    loss_pct: float
    rtt_ms: float | None
    kbps_in: float | None


MediaEvent = (ServerAnswer | ServerOffer | ParticipantJoined | ParticipantLeft | TrackPublished
              | TrackUnpublished | MuteState | ParticipantAway | MediaResumed | AudioOnly | EncodingAdvice
              | NetworkQuality)
