"""The media messages on the WebSocket (protocol version 1): the one home of their wire format.

The WebSocket layer routes any message whose `type` is in MEDIA_MESSAGE_TYPES to
`participant.handle(parse_media_message(obj))` once the participant is admitted; the SFU's
typed events (server/sfu/messages.py) become JSON through `media_event_message`. Every message
carries `"v": 1`. Client messages:

- `offer` {sdp, restart?}: the browser's offer, at join -> server `answer` {sdp}; with
  `restart: true`, from a new peer connection after a network change: the server drops the
  participant's old one and answers this one (docs/api.md "Reconnecting")
- `answer` {sdp}: answer to a server `offer` {sdp, tracks: [{mid, participant_id, track_id,
  kind}], receive: {mid: label}}
- `renegotiate` {publish: ["audio", "video", "screen"]}: ask the server to offer (e.g. to add a
  screen share: the server's offer then lists the mid to send it on under `receive`)
- `mute` {kind: audio|video|screen, muted: bool}
- `leave` {}
- `receive-video` {enabled: bool}: the participant's own "audio only" (false: no video to it)
- `network-quality` {loss_pct, rtt_ms, kbps_in}: its getStats figures, shown to the others
  (numbers or null; at most one a second is relayed)

Server messages: `answer`, `offer`, `participant-joined` {participant_id, tracks},
`participant-left` {participant_id, tracks: [track ids]}, `track-published` {participant_id,
track}, `track-unpublished` {participant_id, track_id, kind}, `mute-state` {participant_id,
kind, muted}, `participant-reconnecting` {participant_id}, `participant-reconnected`
{participant_id}, `media-resumed` {resumed}, `audio-only` {participant_id, active, reason:
bandwidth|loss|manual} (to that participant and the others), `encoding` {kind, max_bitrate,
scale_resolution_down_by, max_framerate} (to a publisher: numbers or null, all null = restore),
`network-quality` {participant_id, loss_pct, rtt_ms, kbps_in}, and the envelope's `error`
{code, message}.

Bad input raises server.errors.InvalidInput with one of the codes: `unsupported_version`,
`unknown_type`, `missing_field`, `invalid_field`, `invalid_sdp`, `sdp_too_large`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput
from ..sfu import messages as sfu
from .envelope import PROTOCOL_VERSION, server_message

MEDIA_MESSAGE_TYPES = frozenset({"offer", "answer", "renegotiate", "mute", "leave", "receive-video",
                                 "network-quality"})
QUALITY_LIMITS = {"loss_pct": 100.0, "rtt_ms": 60_000.0, "kbps_in": 1_000_000.0}
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


def parse_media_message(obj: Mapping[str, Any]) -> sfu.MediaMessage:
    """Validate one decoded JSON object into a frozen media message; InvalidInput if bad."""
    if not isinstance(obj, Mapping):
        raise InvalidInput("A media message must be a JSON object.", code="invalid_field")
    if obj.get("v") != PROTOCOL_VERSION:
        raise InvalidInput("Unsupported media protocol version.", code="unsupported_version")
    kind = obj.get("type")
    if kind not in MEDIA_MESSAGE_TYPES:
        raise InvalidInput("Unknown media message type.", code="unknown_type")
    if kind == "offer":
        restart = obj.get("restart", False)
        if not isinstance(restart, bool):
            raise InvalidInput("restart must be true or false.", code="invalid_field")
        return sfu.OfferMessage(_sdp(obj), restart)
    if kind == "answer":
        return sfu.AnswerMessage(_sdp(obj))
    if kind == "renegotiate":
        publish = _field(obj, "publish")
        if (not isinstance(publish, list) or len(publish) > len(sfu.TRACK_LABELS)
                or not all(isinstance(p, str) and p in sfu.TRACK_LABELS for p in publish)):
            raise InvalidInput("publish must list audio, video and/or screen.", code="invalid_field")
        return sfu.RenegotiateMessage(frozenset(publish))
    if kind == "mute":
        label = _field(obj, "kind")
        muted = _field(obj, "muted")
        if label not in sfu.TRACK_LABELS:
            raise InvalidInput("kind must be audio, video or screen.", code="invalid_field")
        if not isinstance(muted, bool):
            raise InvalidInput("muted must be true or false.", code="invalid_field")
        return sfu.MuteMessage(str(label), muted)
    if kind == "receive-video":
        enabled = _field(obj, "enabled")
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled must be true or false.", code="invalid_field")
        return sfu.ReceiveVideoMessage(enabled)
    if kind == "network-quality":
        loss = _figure(obj, "loss_pct", optional=False)
        assert loss is not None
        return sfu.NetworkQualityMessage(loss, _figure(obj, "rtt_ms"), _figure(obj, "kbps_in"))
    return sfu.LeaveMessage()


def _figure(obj: Mapping[str, Any], name: str, *, optional: bool = True) -> float | None:
    value = obj.get(name) if optional else _field(obj, name)
    if value is None and optional:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
            or not 0 <= value <= QUALITY_LIMITS[name]):
        raise InvalidInput(f"{name} must be a number from 0 to {QUALITY_LIMITS[name]:g}.",
                           code="invalid_field")
    return round(float(value), 1)


def _track_json(track: sfu.TrackInfo) -> dict[str, Any]:
    return {"participant_id": track.participant_id, "track_id": track.track_id,
            "kind": track.kind, "muted": track.muted}


def _outgoing_json(track: sfu.OutgoingTrackInfo) -> dict[str, Any]:
    return {"mid": track.mid, "participant_id": track.participant_id,
            "track_id": track.track_id, "kind": track.kind}


def media_event_message(event: sfu.MediaEvent) -> dict[str, Any]:
    """The JSON message (protocol v1) that tells a participant one SFU event."""
    match event:
        case sfu.ServerAnswer(sdp=sdp):
            return server_message("answer", sdp=sdp)
        case sfu.ServerOffer(sdp=sdp, tracks=tracks, receive=receive):
            return server_message("offer", sdp=sdp, tracks=[_outgoing_json(t) for t in tracks],
                                  receive=dict(receive))
        case sfu.ParticipantJoined(participant_id=pid, tracks=tracks):
            return server_message("participant-joined", participant_id=pid,
                                  tracks=[_track_json(t) for t in tracks])
        case sfu.ParticipantLeft(participant_id=pid, track_ids=track_ids):
            return server_message("participant-left", participant_id=pid, tracks=list(track_ids))
        case sfu.TrackPublished(track=track):
            return server_message("track-published", participant_id=track.participant_id,
                                  track=_track_json(track))
        case sfu.TrackUnpublished(participant_id=pid, track_id=track_id, kind=kind):
            return server_message("track-unpublished", participant_id=pid, track_id=track_id,
                                  kind=kind)
        case sfu.MuteState(participant_id=pid, kind=kind, muted=muted):
            return server_message("mute-state", participant_id=pid, kind=kind, muted=muted)
        case sfu.ParticipantAway(participant_id=pid, away=away):
            return server_message("participant-reconnecting" if away else "participant-reconnected",
                                  participant_id=pid)
        case sfu.MediaResumed(resumed=resumed):
            return server_message("media-resumed", resumed=resumed)
        case sfu.AudioOnly(participant_id=pid, active=active, reason=reason):
            return server_message("audio-only", participant_id=pid, active=active, reason=reason)
        case sfu.EncodingAdvice(label=label, max_bitrate_bps=bitrate, scale_resolution_down_by=scale,
                                max_framerate=fps):
            return server_message("encoding", kind=label, max_bitrate=bitrate,
                                  scale_resolution_down_by=scale, max_framerate=fps)
        case sfu.NetworkQuality(participant_id=pid, loss_pct=loss, rtt_ms=rtt, kbps_in=kbps):
            return server_message("network-quality", participant_id=pid, loss_pct=loss, rtt_ms=rtt,
                                  kbps_in=kbps)
    raise TypeError(f"not a media event: {type(event).__name__}")
