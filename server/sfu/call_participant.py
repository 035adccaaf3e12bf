"""One participant of a call (room.py holds the call): its peer connection and what it
publishes, its mute state and network-quality reports, and its place held across a lost socket
(suspend / resume, a restarted peer connection; reconnection.py, docs/sfu.md)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamTrack

from server.errors import Conflict

from . import aiortc_feedback, aiortc_hook
from .forwarder import PublishedTrack, make_pli_requester
from .messages import (
    AnswerMessage,
    LeaveMessage,
    MediaEvent,
    MediaMessage,
    MediaResumed,
    MuteMessage,
    MuteState,
    NetworkQuality,
    NetworkQualityMessage,
    OfferMessage,
    ReceiveVideoMessage,
    RenegotiateMessage,
    ServerAnswer,
    TrackInfo,
)
from .peer import MediaPeer, Negotiation
from .reconnection import GapWatch, Reconnection, WatchedTrack

if TYPE_CHECKING:
    from .room import SfuRoom

log = logging.getLogger("server.sfu.room")  # one logger for the call and its participants

Notify = Callable[[MediaEvent], Awaitable[None]]
ClosedCallback = Callable[[str], Awaitable[None] | None]
MIN_RESTART_INTERVAL_S = 1.0  # each restart builds a peer connection: bound how often
CLOSE_REASONS = ("left", "ice_failed", "connection_lost", "connect_timeout", "room_closed")
QUALITY_RELAY_INTERVAL_S = 1.0  # network-quality reports relayed at most this often each


class MediaState(enum.Enum):
    JOINING = "joining"  # waiting for the browser's offer
    CONNECTING = "connecting"  # answered, ICE/DTLS not connected yet
    CONNECTED = "connected"
    CLOSED = "closed"


class CallParticipant:
    """One participant in an SfuRoom. Create through `SfuRoom.join`."""

    def __init__(self, room: SfuRoom, participant_id: str, notify: Notify) -> None:
        self.participant_id = participant_id
        self.state = MediaState.JOINING
        self.on_closed: ClosedCallback | None = None
        self._room = room
        self._notify = notify
        self._published: dict[str, PublishedTrack] = {}
        self._muted: dict[str, bool] = {}
        self._track_counter = 0
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0  # of the peer connection: a replaced one's events are ignored
        self._restarted_at: float | None = None
        self._quality_at = -QUALITY_RELAY_INTERVAL_S
        self._downlink = room.bandwidth.new_downlink()  # one per participant, across its peers
        self.reconnection = Reconnection(self, room.clock, room.ice.reconnect_grace_s)
        self.peer = self._new_peer()
        self._spawn(self._connect_deadline(0), "connect-deadline")
        self._spawn(self.reconnection.watch(), "watch")

    def _new_peer(self) -> MediaPeer:
        generation = self._generation
        return MediaPeer(
            self.participant_id, self._room.ice, clock=self._room.clock, on_track=self._on_track,
            on_connection_state=lambda state: self._on_connection_state(generation, state),
            send=self.notify, downlink=self._downlink,
        )

    # -- what Reconnection needs (reconnection.Member) --------------------------------------

    @property
    def connected(self) -> bool:
        return self.state is MediaState.CONNECTED

    def unmuted_tracks(self) -> list[WatchedTrack]:
        return [t for t in self._published.values() if not t.muted]

    def tell_others(self, event: MediaEvent) -> None:
        self._room.broadcast(self, event)

    def give_up(self) -> None:
        self._spawn(self._close("connection_lost"), "grace-over")

    @property
    def published(self) -> Mapping[str, PublishedTrack]:
        return dict(self._published)

    def track_infos(self) -> tuple[TrackInfo, ...]:
        return tuple(TrackInfo(self.participant_id, t.track_id, label, t.muted)
                     for label, t in self._published.items())

    def _spawn(self, coro: Awaitable[None], what: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"sfu-{what}-{self.participant_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def spawn_notify(self, event: MediaEvent) -> None:
        self._spawn(self.notify(event), "notify")

    async def notify(self, event: MediaEvent) -> None:
        if self.state is MediaState.CLOSED:
            return
        try:
            await self._notify(event)
        except Exception:
            log.warning("sfu notify failed for participant %s (%s)",
                        self.participant_id, type(event).__name__)

    # -- client messages ----------------------------------------------------------------

    async def handle(self, message: MediaMessage) -> None:
        """Apply one parsed client message. Raises InvalidInput/Conflict on bad input."""
        if self.state is MediaState.CLOSED:
            raise Conflict("This participant has left the call.", code="participant_closed")
        if isinstance(message, OfferMessage):
            if message.restart and self.peer.negotiation is not Negotiation.AWAITING_OFFER:
                now = self._room.clock.monotonic()
                if self._restarted_at is not None and now - self._restarted_at < MIN_RESTART_INTERVAL_S:
                    raise Conflict("A new connection was made a moment ago; wait a little.",
                                   code="restart_too_soon")
                self._restarted_at = now
                await self._restart_peer()
            answer = await self.peer.accept_offer(message.sdp)
            self.state = MediaState.CONNECTING
            await self.notify(ServerAnswer(answer))
            for other in self._room.others(self):
                for track in other._published.values():
                    self.peer.subscribe(track)
        elif isinstance(message, AnswerMessage):
            await self.peer.accept_answer(message.sdp)
        elif isinstance(message, RenegotiateMessage):
            if self.peer.negotiation is Negotiation.AWAITING_OFFER:
                raise Conflict("Send the first offer before asking to renegotiate.",
                               code="renegotiate_wrong_state")
            wants_screen = "screen" in message.publish
            if not wants_screen and "screen" in self._published:
                self._unpublish("screen")
            if not self.peer.set_receiving_screen(wants_screen):
                self.peer.schedule_negotiation()
        elif isinstance(message, MuteMessage):
            self._set_muted(message.kind, message.muted)
        elif isinstance(message, ReceiveVideoMessage):
            if self.peer.downlink.manual != (not message.enabled):
                self.peer.downlink.set_manual(not message.enabled)
                self._room.bandwidth.manual_changed(self)
        elif isinstance(message, NetworkQualityMessage):
            now = self._room.clock.monotonic()
            if now - self._quality_at >= QUALITY_RELAY_INTERVAL_S:
                self._quality_at = now
                self._room.broadcast(self, NetworkQuality(self.participant_id, message.loss_pct,
                                                          message.rtt_ms, message.kbps_in))
        elif isinstance(message, LeaveMessage):
            await self.leave()

    def _set_muted(self, label: str, muted: bool) -> None:
        if self._muted.get(label, False) == muted:
            return
        self._muted[label] = muted
        track = self._published.get(label)
        if track is not None:
            track.set_muted(muted)
        self._room.broadcast(self, MuteState(self.participant_id, label, muted))

    # -- media events -------------------------------------------------------------------

    def _on_track(self, label: str, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        if self.state is MediaState.CLOSED:
            return
        replaced = self._published.get(label)
        self._track_counter += 1
        published = PublishedTrack(
            publisher_id=self.participant_id, track_id=f"{self.participant_id}-{label}-{self._track_counter}",
            label=label, source=track, request_pli=make_pli_requester(receiver), taps=self._room,
            clock=self._room.clock if self._room.ice.media_path == "packet" else None,
        )
        aiortc_hook.no_receive_after_close(receiver)
        if published.packet_path:
            on_rtp = published.on_rtp
            if published.kind == "video":
                on_rtp = GapWatch(self._room.clock, on_rtp,
                                  lambda: self._room.resume_after_gap(self, published))
            aiortc_hook.take_rtp_packets(receiver, on_rtp)
            aiortc_hook.deliver_rtp_synchronously(receiver.transport)
            if published.kind == "video":  # its REMB: min(the server's estimate, its subscribers')
                published.estimate = aiortc_feedback.cap_receiver_estimate(
                    receiver, lambda: published.subscriber_cap)
        published.set_muted(self._muted.get(label, False))
        self._published[label] = published
        published.start()
        if replaced is None:
            self._room.publish(self, published)
        else:  # a new peer connection's track takes the old one's place in every subscriber
            self._room.republish(self, replaced, published)
            self._spawn(replaced.close(), f"replaced-{label}")

    def _unpublish(self, label: str) -> None:
        track = self._published.pop(label, None)
        if track is not None:
            self._room.unpublish(self, track)
            self._spawn(track.close(), f"unpublish-{label}")

    def _on_connection_state(self, generation: int, state: str) -> None:
        if generation != self._generation:
            return  # a replaced peer connection closing
        if state == "connected" and self.state is MediaState.CONNECTING:
            self.state = MediaState.CONNECTED
            self._connected.set()
            self.reconnection.connected()
        elif state in ("failed", "closed") and self.state is not MediaState.CLOSED:
            # "failed": ICE/DTLS failure; "closed": aiortc closes the connection itself when
            # consent freshness expires (aioice) or the peer sent a DTLS close.
            reason = "ice_failed" if state == "failed" else "connection_lost"
            log.info("sfu participant %s: connection %s, removing", self.participant_id, state)
            self._spawn(self._close(reason), "connection-lost")

    async def _connect_deadline(self, generation: int) -> None:
        try:
            async with asyncio.timeout(self._room.ice.connect_timeout_s):
                await self._connected.wait()
        except TimeoutError:
            if self.state is not MediaState.CLOSED and generation == self._generation:
                log.info("sfu participant %s: not connected in time, removing", self.participant_id)
                await self._close("connect_timeout")

    # -- reconnection (docs/sfu.md "Reconnection") -----------------------------------------

    async def _restart_peer(self) -> None:
        """A new browser peer connection: drop the old one, negotiate the new one from its offer."""
        old = self.peer
        self._generation += 1
        self._connected = asyncio.Event()
        self.state = MediaState.JOINING
        self.peer = self._new_peer()
        self._spawn(self._connect_deadline(self._generation), "connect-deadline")
        self.reconnection.restarted()
        await old.close()

    def suspend(self) -> None:
        """Its socket is gone without a goodbye: hold its place (idempotent)."""
        if self.state is not MediaState.CLOSED and self.reconnection.suspend():
            self._notify = _nowhere

    async def resume(self, notify: Notify) -> None:
        """Its new connection: tell it what it missed (who is here, muted, reconnecting; a
        server offer it never answered)."""
        self._notify = notify
        self.reconnection.resume()
        await self.notify(MediaResumed(True))
        await self._room.tell_present(self)
        offer = self.peer.pending_offer()
        if offer is not None:
            await self.notify(offer)
        self.reconnection.check()

    # -- leaving --------------------------------------------------------------------------

    async def leave(self) -> None:
        """Leave the call (idempotent)."""
        await self._close("left")

    async def _close(self, reason: str) -> None:
        if self.state is MediaState.CLOSED:
            return
        self.state = MediaState.CLOSED
        tracks = list(self._published.values())
        self._published.clear()
        self._room.remove(self, tracks)
        current = asyncio.current_task()
        for task in tuple(self._tasks):
            if task is not current:
                task.cancel()
        for track in tracks:
            await track.close()
        await self.peer.close()
        for task in tuple(self._tasks):
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.on_closed is not None:
            try:
                result = self.on_closed(reason)
                if result is not None:
                    await result
            except Exception:
                log.exception("sfu on_closed callback failed for participant %s", self.participant_id)


async def _nowhere(event: MediaEvent) -> None:
    """Where a suspended participant's events go: its socket is gone."""
