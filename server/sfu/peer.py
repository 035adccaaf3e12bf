"""One participant's RTCPeerConnection and its negotiation (DESIGN D2, D3b).

- The browser offers once, at join (`accept_offer`). Its m-sections are what it publishes, in
  order: the first audio is "audio", the first video "video", a second video "screen".
  Every audio m-section must offer Opus and every video one VP8 (else InvalidInput
  `codec_unsupported`); the server pins them with setCodecPreferences on every transceiver.
- Afterwards only the server offers: one lock and a pending flag. `schedule_negotiation()`
  marks a change; an offer goes out when the connection is stable, the next one after the
  browser's answer (`accept_answer`). Offers reuse the RTP numbering of the first exchange.
  Each answer's bundled m-sections take the DTLS role of its tagged one (dtls_setup.py), so
  one answer cannot switch the role of the shared DTLS transport.
- Outgoing media uses one persistent SubscriberTrack per sendonly transceiver. Unsubscribing
  sets the transceiver inactive; the next subscription of that kind reuses it with a new msid.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver, RTCSessionDescription, sdp
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamTrack

from server.clock import Clock
from server.errors import Conflict, InvalidInput

from . import aiortc_feedback, aiortc_hook
from .bandwidth import Downlink
from .dtls_setup import unify_bundled_setup
from .forwarder import PublishedTrack, SubscriberTrack
from .ice import IceSettings, announce_host_candidates, server_configuration
from .messages import MediaEvent, OutgoingTrackInfo, ServerOffer

log = logging.getLogger(__name__)

PINNED_MIME_TYPES = {"audio": "audio/opus", "video": "video/vp8"}
MAX_OFFERED_SECTIONS = {"audio": 1, "video": 2}

TrackHandler = Callable[[str, MediaStreamTrack, RTCRtpReceiver], None]
Send = Callable[[MediaEvent], Awaitable[None]]


class Negotiation(enum.Enum):
    AWAITING_OFFER = "awaiting-offer"
    STABLE = "stable"
    OFFER_SENT = "offer-sent"
    CLOSED = "closed"


@dataclass
class _OutgoingSlot:
    transceiver: RTCRtpTransceiver
    track: SubscriberTrack


def pinned_codecs(kind: str) -> list[Any]:
    """VP8 (+ its RTX) for video, Opus for audio, as RTCRtpCodecCapability."""
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    caps = capabilities.codecs if capabilities is not None else []
    wanted = PINNED_MIME_TYPES[kind]
    return [c for c in caps if c.mimeType.lower() in (wanted, f"{kind}/rtx")]


def parse_offer_labels(sdp_text: str) -> list[tuple[str, str]]:
    """Validate the browser's first offer; return (kind, label) per m-section, in order."""
    try:
        description = sdp.SessionDescription.parse(sdp_text)
    except Exception:
        raise InvalidInput("The offer is not a valid SDP description.", code="invalid_sdp") from None
    labels: list[tuple[str, str]] = []
    counts = {"audio": 0, "video": 0}
    for media in description.media:
        if media.kind not in counts:
            raise InvalidInput(f"Unsupported m-section kind {media.kind!r}.", code="unsupported_media")
        counts[media.kind] += 1
        if counts[media.kind] > MAX_OFFERED_SECTIONS[media.kind]:
            raise InvalidInput("Too many m-sections in the offer.", code="unsupported_media")
        mimes = {c.mimeType.lower() for c in media.rtp.codecs}
        if PINNED_MIME_TYPES[media.kind] not in mimes:
            codec = "VP8" if media.kind == "video" else "Opus"
            raise InvalidInput(f"The offer's {media.kind} must include {codec}.",
                               code="codec_unsupported")
        if media.kind == "audio":
            labels.append(("audio", "audio"))
        else:
            labels.append(("video", "video" if counts["video"] == 1 else "screen"))
    if not labels:
        raise InvalidInput("The offer has no audio or video.", code="invalid_sdp")
    return labels


def check_answer_sdp(sdp_text: str) -> None:
    try:
        sdp.SessionDescription.parse(sdp_text)
    except Exception:
        raise InvalidInput("The answer is not a valid SDP description.", code="invalid_sdp") from None


class MediaPeer:
    """The server side of one participant's peer connection."""

    def __init__(
        self,
        peer_id: str,
        ice: IceSettings,
        *,
        clock: Clock,
        on_track: TrackHandler,
        on_connection_state: Callable[[str], None],
        send: Send,
        downlink: Downlink | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.downlink = downlink or Downlink(clock)  # what this participant's RTCP says (bandwidth.py)
        self._ice = ice
        self._clock = clock
        self._on_track = on_track
        self._on_connection_state = on_connection_state
        self._send = send
        self._lock = asyncio.Lock()
        self._pending = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: list[_OutgoingSlot] = []
        self._incoming: dict[int, str] = {}  # id(transceiver) -> label
        self._reactivated: set[int] = set()  # ids of receiving transceivers reopened
        self._negotiated: dict[str, aiortc_hook.NegotiatedRtp] = {}
        self._last_offer: ServerOffer | None = None
        self.negotiation = Negotiation.AWAITING_OFFER
        self.pc = self._new_pc()

    # -- connection ---------------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(server_configuration(self._ice))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.track is track:
                    label = self._incoming.get(id(transceiver))
                    if label is None:
                        return
                    aiortc_hook.mark_encoded(track, transceiver.receiver)
                    self._on_track(label, track, transceiver.receiver)
                    return

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self._on_connection_state(pc.connectionState)

        return pc

    def _add_receiving(self, kind: str, label: str) -> RTCRtpTransceiver:
        transceiver = self.pc.addTransceiver(kind, direction="recvonly")
        transceiver.setCodecPreferences(pinned_codecs(kind))
        self._incoming[id(transceiver)] = label
        return transceiver

    async def accept_offer(self, sdp_text: str) -> str:
        """Apply the browser's first offer; return the answer SDP."""
        if self.negotiation is not Negotiation.AWAITING_OFFER:
            raise Conflict("An offer is only accepted once, at join; ask to renegotiate instead.",
                           code="offer_wrong_state")
        labels = parse_offer_labels(sdp_text)
        async with self._lock:
            for kind, label in labels:
                self._add_receiving(kind, label)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp_text, type="offer"))
                answer = await self.pc.createAnswer()
                await self.pc.setLocalDescription(answer)
            except (ValueError, KeyError, IndexError, InvalidAccessError, InvalidStateError,
                    OperationError):
                await self._replace_pc()
                raise InvalidInput("The offer could not be applied.", code="invalid_sdp") from None
            self._negotiated = aiortc_hook.negotiated_rtp(self.pc)
            self.negotiation = Negotiation.STABLE
            return announce_host_candidates(self.pc.localDescription.sdp, self._ice.announce_address)

    async def _replace_pc(self) -> None:
        old = self.pc
        self._incoming.clear()
        self.pc = self._new_pc()
        await old.close()

    async def accept_answer(self, sdp_text: str) -> None:
        """Apply the browser's answer to the server's pending offer."""
        if self.negotiation is not Negotiation.OFFER_SENT:
            raise Conflict("There is no server offer waiting for an answer.", code="answer_wrong_state")
        check_answer_sdp(sdp_text)
        async with self._lock:
            try:
                # Firefox writes a=setup:active on new bundled m-sections: keep the tagged role.
                answer = unify_bundled_setup(sdp_text)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            except (ValueError, KeyError, IndexError, InvalidAccessError, InvalidStateError,
                    OperationError):
                raise InvalidInput("The answer could not be applied.", code="invalid_sdp") from None
            self.negotiation = Negotiation.STABLE
        self._reannounce_reactivated()
        if self._pending:
            self._start_negotiation()

    def _reannounce_reactivated(self) -> None:
        """A reused receiving transceiver keeps its track: no "track" event; announce it here."""
        for transceiver in self.pc.getTransceivers():
            label = self._incoming.get(id(transceiver))
            track = transceiver.receiver.track
            if (label is not None and track is not None and transceiver.direction == "recvonly"
                    and id(transceiver) in self._reactivated):
                self._reactivated.discard(id(transceiver))
                self._on_track(label, track, transceiver.receiver)

    # -- outgoing media -----------------------------------------------------------------

    def subscribe(self, published: PublishedTrack) -> None:
        """Send `published` to this participant (idempotent); renegotiates when needed."""
        if self.negotiation is Negotiation.CLOSED or any(s.track.source is published for s in self._slots):
            return
        slot = next((s for s in self._slots if s.track.source is None
                     and s.track.kind == published.kind), None)
        if slot is None:
            track = SubscriberTrack(published.kind, clock=self._clock)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(pinned_codecs(published.kind))
            aiortc_hook.forward_keyframe_requests(transceiver.sender, track.request_keyframe)
            if self._ice.media_path == "packet":
                track.attach_sender(transceiver.sender)
                if published.kind == "video":
                    self._watch_feedback(transceiver.sender, track)
            slot = _OutgoingSlot(transceiver, track)
            self._slots.append(slot)
        stream = published.publisher_id if published.label != "screen" else f"{published.publisher_id}-screen"
        aiortc_hook.set_sender_msid(slot.transceiver.sender, stream, published.track_id)
        slot.transceiver.direction = "sendonly"
        slot.track.set_source(published)
        self.schedule_negotiation()

    def _watch_feedback(self, sender: Any, track: SubscriberTrack) -> None:
        """The subscriber's REMB and receiver reports about this video go to `downlink`."""
        downlink = self.downlink

        def on_report(report: aiortc_feedback.ReceiverReport) -> None:
            downlink.on_report(report, track.upstream_lost)

        aiortc_feedback.watch_subscriber_feedback(sender, downlink.on_remb, on_report)

    def unsubscribe(self, published: PublishedTrack) -> None:
        for slot in self._slots:
            if slot.track.source is published:
                slot.track.set_source(None)
                slot.transceiver.direction = "inactive"
                self.schedule_negotiation()

    def replace_source(self, old: PublishedTrack, new: PublishedTrack) -> None:
        """Forward `new` where `old` was forwarded (the publisher's new peer connection): same
        transceiver and msid, no renegotiation; video resumes at a keyframe, asked for now."""
        for slot in self._slots:
            if slot.track.source is old:
                slot.track.set_source(new)

    def resync_source(self, published: PublishedTrack) -> None:
        """Wait for `published`'s next keyframe (its packets resume after a lossy gap)."""
        for slot in self._slots:
            if slot.track.source is published:
                slot.track.resync()

    def outgoing_tracks(self) -> list[SubscriberTrack]:
        return [s.track for s in self._slots]

    # -- publishing more (screen share) ---------------------------------------------------

    def set_receiving_screen(self, wanted: bool) -> bool:
        """Open (recvonly) or close (inactive) the screen m-section; True if anything changed."""
        screen = next((t for t in self.pc.getTransceivers()
                       if self._incoming.get(id(t)) == "screen"), None)
        if wanted:
            if screen is None:
                self._add_receiving("video", "screen")
            elif screen.direction != "recvonly":
                screen.direction = "recvonly"
                self._reactivated.add(id(screen))
            else:
                return False
        else:
            if screen is None or screen.direction == "inactive":
                return False
            screen.direction = "inactive"
        self.schedule_negotiation()
        return True

    # -- negotiation ----------------------------------------------------------------------

    def schedule_negotiation(self) -> None:
        self._pending = True
        if self.negotiation is Negotiation.STABLE:
            self._start_negotiation()

    def _start_negotiation(self) -> None:
        if any(t.get_name().startswith("sfu-negotiate") and not t.done() for t in self._tasks):
            return
        task = asyncio.get_running_loop().create_task(
            self._negotiate(), name=f"sfu-negotiate-{self.peer_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _negotiate(self) -> None:
        while self._pending and self.negotiation is Negotiation.STABLE:
            async with self._lock:
                if not self._pending or self.negotiation is not Negotiation.STABLE:
                    return
                self._pending = False
                offer = await aiortc_hook.create_offer_keeping_numbering(self.pc, self._negotiated)
                await self.pc.setLocalDescription(offer)
                self.negotiation = Negotiation.OFFER_SENT
                tracks = tuple(
                    OutgoingTrackInfo(mid=str(s.transceiver.mid), participant_id=src.publisher_id,
                                      track_id=src.track_id, kind=src.label)
                    for s in self._slots if (src := s.track.source) is not None
                )
                receive = {str(t.mid): label for t in self.pc.getTransceivers()
                           if (label := self._incoming.get(id(t))) is not None
                           and t.direction == "recvonly"}
                sdp_text = announce_host_candidates(self.pc.localDescription.sdp,
                                                    self._ice.announce_address)
                self._last_offer = ServerOffer(sdp_text, tracks, receive)
            try:
                await self._send(self._last_offer)
            except Exception:
                log.warning("sfu could not send an offer to participant %s", self.peer_id)

    def pending_offer(self) -> ServerOffer | None:
        """The offer sent last, while no answer came (to send again on a new socket)."""
        return self._last_offer if self.negotiation is Negotiation.OFFER_SENT else None

    async def close(self) -> None:
        """Close the peer connection and stop every task (idempotent)."""
        if self.negotiation is Negotiation.CLOSED:
            return
        self.negotiation = Negotiation.CLOSED
        for slot in self._slots:
            slot.track.stop()
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pc.close()
        self._slots.clear()
        self._incoming.clear()
