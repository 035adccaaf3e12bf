"""The seam between signalling and the SFU: one media room per open consultation.

`SfuMediaGateway` keeps one server.sfu.room.SfuRoom per consultation on this node, parses what
the client sends and turns what the SFU tells into JSON (server/signalling/media.py); tests and
nodes without media can use `NullMediaGateway` (media messages are then refused).

A session whose socket went away without a goodbye is `suspend()`ed: the SFU holds its place
and a join with `resume=True` from the participant's next connection takes it back (docs/sfu.md
"Reconnection"); `drop()` takes a participant out for good (removed, denied, left).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ..clock import Clock
from ..errors import Conflict
from ..sfu.ice import IceSettings
from ..sfu.messages import MediaEvent
from ..sfu.room import CallParticipant, SfuRoom
from .media import media_event_message, parse_media_message

log = logging.getLogger("teleconsult.media")

Notify = Callable[[Mapping[str, Any]], Awaitable[None]]


class MediaSession(Protocol):
    async def handle(self, message: Mapping[str, Any]) -> None:
        """Apply one raw media message; raises InvalidInput/Conflict on bad input."""
        ...

    async def leave(self) -> None:
        """Idempotent."""
        ...

    def suspend(self, gone: Callable[[], Awaitable[None]] | None = None) -> None:
        """The socket is gone: hold the place for the participant's next connection; `gone()`
        is awaited if the place is given up instead (the grace ran out, or it was dropped)."""
        ...


class MediaGateway(Protocol):
    # True when the media layer itself tells others who joined/left the call.
    announces_presence: bool

    async def join(
        self, consultation_id: str, participant_id: str, max_participants: int, notify: Notify,
        *, resume: bool = False,
    ) -> MediaSession | None: ...

    async def drop(self, consultation_id: str, participant_id: str) -> None: ...

    async def close_room(self, consultation_id: str) -> None: ...

    async def close(self) -> None: ...


class NullMediaGateway:
    announces_presence = False

    async def join(
        self, consultation_id: str, participant_id: str, max_participants: int, notify: Notify,
        *, resume: bool = False,
    ) -> MediaSession | None:
        return None

    async def drop(self, consultation_id: str, participant_id: str) -> None:
        return None

    async def close_room(self, consultation_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


class _SfuSession:
    def __init__(self, participant: CallParticipant) -> None:
        self._participant = participant

    async def handle(self, message: Mapping[str, Any]) -> None:
        await self._participant.handle(parse_media_message(message))

    async def leave(self) -> None:
        await self._participant.leave()

    def suspend(self, gone: Callable[[], Awaitable[None]] | None = None) -> None:
        if gone is not None:
            self._participant.on_closed = lambda _reason: gone()
        self._participant.suspend()


class SfuMediaGateway:
    announces_presence = True

    def __init__(self, ice: IceSettings, clock: Clock) -> None:
        self._ice = ice
        self._clock = clock
        self._rooms: dict[str, SfuRoom] = {}
        self._closed = False

    @property
    def rooms(self) -> Mapping[str, SfuRoom]:
        return dict(self._rooms)

    async def join(
        self, consultation_id: str, participant_id: str, max_participants: int, notify: Notify,
        *, resume: bool = False,
    ) -> MediaSession | None:
        if self._closed:
            raise Conflict("The server is shutting down.", code="room_closed")
        room = self._rooms.get(consultation_id)
        if room is None:
            room = SfuRoom(consultation_id, self._ice, clock=self._clock, max_participants=max_participants)
            self._rooms[consultation_id] = room

        async def tell(event: MediaEvent) -> None:
            await notify(media_event_message(event))

        return _SfuSession(await room.join(participant_id, tell, resume=resume))

    async def drop(self, consultation_id: str, participant_id: str) -> None:
        room = self._rooms.get(consultation_id)
        if room is not None:
            await room.drop(participant_id)

    async def close_room(self, consultation_id: str) -> None:
        room = self._rooms.pop(consultation_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        self._closed = True
        for consultation_id in list(self._rooms):
            await self.close_room(consultation_id)
