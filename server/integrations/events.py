"""The event sink: what the consultation and recording services emit into (docs/integrations.md).

A service receives a sink at composition and makes one-line calls where the thing happens:

    await self._events.emit(EventType.CONSULTATION_ENDED, consultation_id=cid)

Events carry ids only. The default sink does nothing; the composition root hands in the
webhook outbox (outbox.OutboxEventSink). A sink never raises into the caller: ending a
consultation must not fail because a webhook could not be queued.
"""

from __future__ import annotations

import enum
from typing import Protocol


class EventType(enum.StrEnum):
    CONSULTATION_CREATED = "consultation.created"
    CONSULTATION_STARTED = "consultation.started"
    CONSULTATION_ENDED = "consultation.ended"
    RECORDING_AVAILABLE = "recording.available"
    RECORDING_DELETED = "recording.deleted"


class EventSink(Protocol):
    async def emit(
        self, event: EventType, *, consultation_id: str, recording_id: str | None = None
    ) -> None: ...


class NoEvents:
    """The default sink: nothing is emitted anywhere."""

    async def emit(
        self, event: EventType, *, consultation_id: str, recording_id: str | None = None
    ) -> None:
        return None


NO_EVENTS: EventSink = NoEvents()
