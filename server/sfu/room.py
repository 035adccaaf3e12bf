"""A call: participants, their published tracks, and who receives what.

Public API (used by server/signalling; stable)::

    room = SfuRoom(room_id, IceSettings.from_settings(settings), clock=clock, max_participants=4)
    participant = await room.join(participant_id, notify)
        # notify(message) sends one JSON-able server->client media message (server/sfu/messages.py)
        # raises Conflict("room_full" | "already_joined"), InvalidInput("invalid_participant_id")
    participant.on_closed = callback      # callback(reason) once, reason in CLOSE_REASONS
    await participant.handle(message)     # a parsed client message (server.signalling.media)
        # raises InvalidInput / Conflict (e.g. invalid_sdp, offer_wrong_state): send the client
        # an `error` {code, message}; the connection and the call stay as they were
    await participant.leave()             # idempotent
    room.published_tracks()               # PublishedTrack list, for the recorder
    room.add_publication_listener(cb)     # cb(track, published: bool)
    await room.close()                    # idempotent

Everyone receives everyone else's audio, video and screen share. A participant whose peer
connection is not connected within `ice.connect_timeout_s`, or whose ICE consent fails
(connectionState "failed"), is removed and the others are told (`participant-left`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamTrack

from server.clock import Clock
from server.errors import Conflict, InvalidInput

from . import aiortc_hook
from .forwarder import PublishedTrack, make_pli_requester
from .ice import IceSettings
from .messages import (
    AnswerMessage,
    LeaveMessage,
    MediaMessage,
    MuteMessage,
    OfferMessage,
    RenegotiateMessage,
    TrackInfo,
    answer_message,
    mute_state_message,
    participant_joined_message,
    participant_left_message,
    track_published_message,
    track_unpublished_message,
)
from .peer import MediaPeer, Negotiation

log = logging.getLogger(__name__)

Notify = Callable[[Mapping[str, Any]], Awaitable[None]]
ClosedCallback = Callable[[str], Awaitable[None] | None]
PublicationListener = Callable[[PublishedTrack, bool], None]
CLOSE_REASONS = ("left", "ice_failed", "connection_lost", "connect_timeout", "room_closed")
_PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ParticipantState(enum.Enum):
    JOINING = "joining"  # waiting for the browser's offer
    CONNECTING = "connecting"  # answered, ICE/DTLS not connected yet
    CONNECTED = "connected"
    CLOSED = "closed"


class CallParticipant:
    """One participant in an SfuRoom. Create through `SfuRoom.join`."""

    def __init__(self, room: SfuRoom, participant_id: str, notify: Notify) -> None:
        self.participant_id = participant_id
        self.state = ParticipantState.JOINING
        self.on_closed: ClosedCallback | None = None
        self._room = room
        self._notify = notify
        self._published: dict[str, PublishedTrack] = {}
        self._muted: dict[str, bool] = {}
        self._track_counter = 0
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.peer = MediaPeer(
            participant_id, room.ice, clock=room.clock, on_track=self._on_track,
            on_connection_state=self._on_connection_state, send=self.notify,
        )
        self._spawn(self._connect_deadline(), "connect-deadline")

    @property
    def published(self) -> Mapping[str, PublishedTrack]:
        return dict(self._published)

    def track_infos(self) -> list[TrackInfo]:
        return [TrackInfo(self.participant_id, t.track_id, label, t.muted)
                for label, t in self._published.items()]

    def _spawn(self, coro: Awaitable[None], what: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"sfu-{what}-{self.participant_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notify(self, message: Mapping[str, Any]) -> None:
        if self.state is ParticipantState.CLOSED:
            return
        try:
            await self._notify(message)
        except Exception:
            log.warning("sfu notify failed for participant %s (%s)",
                        self.participant_id, message.get("type"))

    # -- client messages ----------------------------------------------------------------

    async def handle(self, message: MediaMessage) -> None:
        """Apply one parsed client message. Raises InvalidInput/Conflict on bad input."""
        if self.state is ParticipantState.CLOSED:
            raise Conflict("This participant has left the call.", code="participant_closed")
        if isinstance(message, OfferMessage):
            answer = await self.peer.accept_offer(message.sdp)
            self.state = ParticipantState.CONNECTING
            await self.notify(answer_message(answer))
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
        elif isinstance(message, LeaveMessage):
            await self.leave()

    def _set_muted(self, label: str, muted: bool) -> None:
        if self._muted.get(label, False) == muted:
            return
        self._muted[label] = muted
        track = self._published.get(label)
        if track is not None:
            track.set_muted(muted)
        self._room.broadcast(self, mute_state_message(self.participant_id, label, muted))

    # -- media events -------------------------------------------------------------------

    def _on_track(self, label: str, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        if self.state is ParticipantState.CLOSED:
            return
        if label in self._published:
            self._unpublish(label)
        self._track_counter += 1
        published = PublishedTrack(
            publisher_id=self.participant_id, track_id=f"{self.participant_id}-{label}-{self._track_counter}",
            label=label, source=track, request_pli=make_pli_requester(receiver),
        )
        published.set_muted(self._muted.get(label, False))
        self._published[label] = published
        published.start()
        self._room.publish(self, published)

    def _unpublish(self, label: str) -> None:
        track = self._published.pop(label, None)
        if track is not None:
            self._room.unpublish(self, track)
            self._spawn(track.close(), f"unpublish-{label}")

    def _on_connection_state(self, state: str) -> None:
        if state == "connected" and self.state is ParticipantState.CONNECTING:
            self.state = ParticipantState.CONNECTED
            self._connected.set()
        elif state in ("failed", "closed") and self.state is not ParticipantState.CLOSED:
            # "failed": ICE/DTLS failure; "closed": aiortc closes the connection itself when
            # consent freshness expires (aioice) or the peer sent a DTLS close.
            reason = "ice_failed" if state == "failed" else "connection_lost"
            log.info("sfu participant %s: connection %s, removing", self.participant_id, state)
            self._spawn(self._close(reason), "connection-lost")

    async def _connect_deadline(self) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), self._room.ice.connect_timeout_s)
        except TimeoutError:
            if self.state is not ParticipantState.CLOSED:
                log.info("sfu participant %s: not connected in time, removing", self.participant_id)
                await self._close("connect_timeout")

    # -- leaving --------------------------------------------------------------------------

    async def leave(self) -> None:
        """Leave the call (idempotent)."""
        await self._close("left")

    async def _close(self, reason: str) -> None:
        if self.state is ParticipantState.CLOSED:
            return
        self.state = ParticipantState.CLOSED
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


class SfuRoom:
    """The media side of one consultation."""

    def __init__(self, room_id: str, ice: IceSettings, *, clock: Clock, max_participants: int = 4) -> None:
        if not 2 <= max_participants <= 8:
            raise ValueError("max_participants must be between 2 and 8")
        aiortc_hook.install()
        aiortc_hook.restrict_host_addresses(ice.host_addresses)
        self.room_id = room_id
        self.ice = ice
        self.clock = clock
        self.max_participants = max_participants
        self._participants: dict[str, CallParticipant] = {}
        self._listeners: list[PublicationListener] = []
        self._closed = False

    def participants(self) -> list[CallParticipant]:
        return list(self._participants.values())

    def others(self, participant: CallParticipant) -> list[CallParticipant]:
        return [p for p in self._participants.values() if p is not participant]

    def published_tracks(self) -> list[PublishedTrack]:
        return [t for p in self._participants.values() for t in p._published.values()]

    def add_publication_listener(self, listener: PublicationListener) -> None:
        self._listeners.append(listener)

    def remove_publication_listener(self, listener: PublicationListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def join(self, participant_id: str, notify: Notify) -> CallParticipant:
        if self._closed:
            raise Conflict("This call has ended.", code="room_closed")
        if not _PARTICIPANT_ID.match(participant_id):
            raise InvalidInput("Invalid participant id.", code="invalid_participant_id")
        if participant_id in self._participants:
            raise Conflict("This participant is already in the call.", code="already_joined")
        if len(self._participants) >= self.max_participants:
            raise Conflict("The call is full.", code="room_full")
        participant = CallParticipant(self, participant_id, notify)
        existing = self.participants()
        self._participants[participant_id] = participant
        for other in existing:
            await participant.notify(participant_joined_message(other.participant_id, other.track_infos()))
        self.broadcast(participant, participant_joined_message(participant_id, []))
        return participant

    def broadcast(self, sender: CallParticipant, message: Mapping[str, Any]) -> None:
        for other in self.others(sender):
            other._spawn(other.notify(message), "notify")

    def _listeners_call(self, track: PublishedTrack, published: bool) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(track, published)
            except Exception:
                log.exception("sfu publication listener failed in room %s", self.room_id)

    def publish(self, publisher: CallParticipant, track: PublishedTrack) -> None:
        info = TrackInfo(publisher.participant_id, track.track_id, track.label, track.muted)
        for other in self.others(publisher):
            if other.peer.negotiation is not Negotiation.AWAITING_OFFER:
                other.peer.subscribe(track)
            other._spawn(other.notify(track_published_message(info)), "notify")
        self._listeners_call(track, True)

    def unpublish(self, publisher: CallParticipant, track: PublishedTrack) -> None:
        for other in self.others(publisher):
            other.peer.unsubscribe(track)
            other._spawn(other.notify(track_unpublished_message(
                publisher.participant_id, track.track_id, track.label)), "notify")
        self._listeners_call(track, False)

    def remove(self, participant: CallParticipant, tracks: list[PublishedTrack]) -> None:
        if self._participants.get(participant.participant_id) is not participant:
            return
        del self._participants[participant.participant_id]
        for track in tracks:
            for other in self._participants.values():
                other.peer.unsubscribe(track)
            self._listeners_call(track, False)
        self.broadcast(participant, participant_left_message(
            participant.participant_id, [t.track_id for t in tracks]))

    async def close(self) -> None:
        """Close every participant's peer connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for participant in self.participants():
            await participant._close("room_closed")
