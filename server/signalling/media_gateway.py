"""The seam between signalling and the SFU: one media room per open consultation.

`SfuMediaGateway` keeps one server.sfu.room.SfuRoom per consultation on this node; tests and
nodes without media can use `NullMediaGateway` (media messages are then refused).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ..clock import Clock
from ..errors import Conflict
from ..sfu.ice import IceSettings
from ..sfu.room import CallParticipant, SfuRoom
from .media import parse_media_message

log = logging.getLogger("teleconsult.media")

Notify = Callable[[Mapping[str, Any]], Awaitable[None]]


class MediaSession(Protocol):
    async def handle(self, message: Mapping[str, Any]) -> None:
        """Apply one raw media message; raises InvalidInput/Conflict on bad input."""
        ...

    async def leave(self) -> None:
        """Idempotent."""
        ...


class MediaGateway(Protocol):
    # True when the media layer itself tells others who joined/left the call.
    announces_presence: bool

    async def join(
        self, consultation_id: str, participant_id: str, max_participants: int, notify: Notify
    ) -> MediaSession | None: ...

    async def close_room(self, consultation_id: str) -> None: ...

    async def close(self) -> None: ...


class NullMediaGateway:
    announces_presence = False

    async def join(
        self, consultation_id: str, participant_id: str, max_participants: int, notify: Notify
    ) -> MediaSession | None:
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
        self, consultation_id: str, participant_id: str, max_participants: int, notify: Notify
    ) -> MediaSession | None:
        if self._closed:
            raise Conflict("The server is shutting down.", code="room_closed")
        room = self._rooms.get(consultation_id)
        if room is None:
            room = SfuRoom(consultation_id, self._ice, clock=self._clock, max_participants=max_participants)
            self._rooms[consultation_id] = room
        return _SfuSession(await room.join(participant_id, notify))

    async def close_room(self, consultation_id: str) -> None:
        room = self._rooms.pop(consultation_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        self._closed = True
        for consultation_id in list(self._rooms):
            await self.close_room(consultation_id)
