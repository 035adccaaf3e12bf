"""A call: participants, their published tracks, and who receives what.

Public API (used by server/signalling; stable)::

    setup_media_runtime(ice)   # server/sfu/runtime.py: once per process, at start-up
    room = SfuRoom(room_id, ice, clock=clock, max_participants=4)
    participant = await room.join(participant_id, notify, resume=False)
        # notify(event) tells the participant one MediaEvent (server/sfu/messages.py; the
        # signalling layer turns it into JSON); resume=True takes back a place held for it
        # (see "Reconnection" below) and tells it MediaResumed(True | False) first
        # raises Conflict("room_full" | "already_joined"), InvalidInput("invalid_participant_id")
    participant.suspend()                 # its socket is gone: hold its place (below)
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

Reconnection (reconnection.py, docs/sfu.md): a participant whose socket went away without a
goodbye is `suspend()`ed, its place held until its next connection joins with resume=True or
its grace runs out; `OfferMessage(restart=True)` replaces its peer connection (aiortc has no
ICE restart), the new tracks taking the old ones' place in every subscriber.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable

from server import metrics
from server.clock import Clock
from server.errors import Conflict, InvalidInput

from .bandwidth_control import BandwidthControl
from .call_participant import CLOSE_REASONS, CallParticipant, ClosedCallback, MediaState, Notify
from .forwarder import FrameTap, PublishedTrack
from .ice import IceSettings
from .messages import (
    MediaEvent,
    MediaResumed,
    ParticipantAway,
    ParticipantJoined,
    ParticipantLeft,
    TrackInfo,
    TrackPublished,
    TrackUnpublished,
)
from .peer import Negotiation
from .runtime import media_runtime_ready

log = logging.getLogger(__name__)

PublicationListener = Callable[[PublishedTrack, bool], None]
_PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
__all__ = ["CLOSE_REASONS", "CallParticipant", "ClosedCallback", "MediaState", "Notify", "SfuRoom"]


class SfuRoom:
    """The media side of one consultation."""

    def __init__(self, room_id: str, ice: IceSettings, *, clock: Clock, max_participants: int = 4) -> None:
        if not 2 <= max_participants <= 8:
            raise ValueError("max_participants must be between 2 and 8")
        if not media_runtime_ready():
            raise RuntimeError("server.sfu.runtime.setup_media_runtime() must run once at "
                               "start-up before a room opens")
        self.room_id = room_id
        self.ice = ice
        self.clock = clock
        self.max_participants = max_participants
        self._participants: dict[str, CallParticipant] = {}
        self._listeners: list[PublicationListener] = []
        self._closed = False
        self.frame_tap: FrameTap | None = None  # tests/diagnostics only (forwarder.py)
        self.bandwidth = BandwidthControl(self, clock)

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

    async def join(self, participant_id: str, notify: Notify, *, resume: bool = False) -> CallParticipant:
        held = self._participants.get(participant_id)
        if held is not None and held.reconnection.suspended and not self._closed:
            if resume:
                await held.resume(notify)
                return held
            await held._close("left")  # a fresh join (a reloaded page) gives up the held place
        if self._closed:
            metrics.JOIN_FAILURES.labels(stage="call", reason="room_closed").inc()
            raise Conflict("This call has ended.", code="room_closed")
        if not _PARTICIPANT_ID.match(participant_id):
            metrics.JOIN_FAILURES.labels(stage="call", reason="invalid_participant_id").inc()
            raise InvalidInput("Invalid participant id.", code="invalid_participant_id")
        if participant_id in self._participants:
            metrics.JOIN_FAILURES.labels(stage="call", reason="already_joined").inc()
            raise Conflict("This participant is already in the call.", code="already_joined")
        if len(self._participants) >= self.max_participants:
            metrics.JOIN_FAILURES.labels(stage="call", reason="room_full").inc()
            raise Conflict("The call is full.", code="room_full")
        participant = CallParticipant(self, participant_id, notify)
        if self.ice.media_path == "packet":
            self.bandwidth.start()
        self._participants[participant_id] = participant
        metrics.call_joined(len(self._participants))
        if resume:
            await participant.notify(MediaResumed(False))
        await self.tell_present(participant)
        self.broadcast(participant, ParticipantJoined(participant_id, ()))
        return participant

    async def tell_present(self, participant: CallParticipant) -> None:
        """Who else is in the call, with their tracks, and who of them is reconnecting."""
        for other in self.others(participant):
            await participant.notify(ParticipantJoined(other.participant_id, other.track_infos()))
            if other.reconnection.reconnecting:
                await participant.notify(ParticipantAway(other.participant_id, True))

    async def drop(self, participant_id: str) -> None:
        """Take a participant out for good (removed, left, denied): also a place held for it."""
        participant = self._participants.get(participant_id)
        if participant is not None:
            await participant.leave()

    def broadcast(self, sender: CallParticipant, event: MediaEvent) -> None:
        for other in self.others(sender):
            other._spawn(other.notify(event), "notify")

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
            other._spawn(other.notify(TrackPublished(info)), "notify")
        self._listeners_call(track, True)

    def republish(self, publisher: CallParticipant, old: PublishedTrack, new: PublishedTrack) -> None:
        """`new` (from a new peer connection) takes `old`'s place in every subscriber."""
        for other in self.others(publisher):
            other.peer.replace_source(old, new)
        self._listeners_call(old, False)
        self._listeners_call(new, True)

    def resume_after_gap(self, publisher: CallParticipant, track: PublishedTrack) -> None:
        """`track`'s packets resume after a lossy gap (liveness.GapWatch): its subscribers wait
        for the next keyframe, asked for now."""
        for other in self.others(publisher):
            other.peer.resync_source(track)
        track.request_keyframe()

    def unpublish(self, publisher: CallParticipant, track: PublishedTrack) -> None:
        for other in self.others(publisher):
            other.peer.unsubscribe(track)
            other._spawn(other.notify(TrackUnpublished(
                publisher.participant_id, track.track_id, track.label)), "notify")
        self._listeners_call(track, False)

    def remove(self, participant: CallParticipant, tracks: list[PublishedTrack]) -> None:
        if self._participants.get(participant.participant_id) is not participant:
            return
        del self._participants[participant.participant_id]
        metrics.call_left(len(self._participants))
        for track in tracks:
            for other in self._participants.values():
                other.peer.unsubscribe(track)
            self._listeners_call(track, False)
        self.broadcast(participant, ParticipantLeft(
            participant.participant_id, tuple(t.track_id for t in tracks)))

    async def close(self) -> None:
        """Close every participant's peer connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for participant in self.participants():
            await participant._close("room_closed")
        await self.bandwidth.close()
