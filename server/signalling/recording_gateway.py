"""Recording consent over the consultation WebSocket (docs/api.md "Recording"), layer 5.

The seam: `RecordingMediaGateway` wraps the hub's media gateway. Joining the call (an admitted
participant entering it) makes the participant present for consent; leaving the call makes
them absent; closing the consultation's room ends any recording. The recording message types
(recording_messages.RECORDING_MESSAGE_TYPES) reach the participant's media session like media
messages and are handled here instead of by the SFU; their wire format is in
server/signalling/recording_messages.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import InvalidInput
from ..integrations.events import NO_EVENTS, EventSink
from ..recorder.controller import MediaRoomLike, RecordingController, RecordingNotice, Send
from ..recorder.session import RecordingSession
from ..recording.escrow import EscrowLog, EscrowRecord, RecordingEscrow, RecordingKeyRegistry
from ..recording.evidence import ConsentEvidence
from ..recording.keys import RecordingKeys
from ..store.base import DocumentStore
from .hub import HOST_PARTICIPANT_ID
from .media_gateway import MediaGateway, MediaSession, Notify, SfuMediaGateway
from .recording_messages import (
    RECORDING_MESSAGE_TYPES,
    ConsentAnswer,
    ConsentLanguage,
    parse_recording_message,
    recording_notice_message,
)

log = logging.getLogger("teleconsult.recording")

ControllerFactory = Callable[[str, Send], RecordingController]


class _RecordingSession:
    def __init__(self, gateway: RecordingMediaGateway, cid: str, pid: str,
                 inner: MediaSession | None) -> None:
        self._gateway = gateway
        self._cid = cid
        self._pid = pid
        self._inner = inner
        self._left = False

    async def handle(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind not in RECORDING_MESSAGE_TYPES:
            if self._inner is None:
                raise InvalidInput("The call is not available.", code="media_unavailable")
            await self._inner.handle(message)
            if kind == "leave":
                await self._leave_recording()
            return
        controller = self._gateway.controller(self._cid)
        if controller is None or self._left:
            raise InvalidInput("You are not in the call.", code="not_in_call")
        if kind == "recording-key" and self._pid != HOST_PARTICIPANT_ID:
            raise InvalidInput("Only the host sends recording keys.", code="forbidden")
        parsed = parse_recording_message(message)
        if isinstance(parsed, EscrowRecord):
            await controller.escrow_key(self._pid, parsed)
        elif isinstance(parsed, ConsentAnswer):
            await controller.answer(self._pid, parsed.answer, request_id=parsed.request_id,
                                    text_version=parsed.text_version)
        elif isinstance(parsed, ConsentLanguage):
            await controller.set_language(self._pid, parsed.lang)
        elif parsed.action == "record-request":
            await controller.request(self._pid)
        elif parsed.action == "record-stop":
            await controller.stop(self._pid)
        else:
            await controller.withdraw(self._pid)

    async def _leave_recording(self) -> None:
        if self._left:
            return
        self._left = True
        controller = self._gateway.controller(self._cid)
        if controller is not None:
            await controller.left(self._pid)

    async def leave(self) -> None:
        try:
            await self._leave_recording()
        finally:
            if self._inner is not None:
                await self._inner.leave()

    def suspend(self, gone: Callable[[], Awaitable[None]] | None = None) -> None:
        """Still present for consent while the SFU holds its place; absent if it gives it up."""
        async def given_up() -> None:
            await self._leave_recording()
            if gone is not None:
                await gone()

        if self._inner is not None:
            self._inner.suspend(given_up)


class RecordingMediaGateway:
    """A MediaGateway that adds recording consent to another one (the SFU gateway)."""

    def __init__(self, inner: MediaGateway, factory: ControllerFactory) -> None:
        self.inner = inner
        self.announces_presence = inner.announces_presence
        self._factory = factory
        self._controllers: dict[str, RecordingController] = {}
        self._notify: dict[tuple[str, str], Notify] = {}

    def controller(self, consultation_id: str) -> RecordingController | None:
        return self._controllers.get(consultation_id)

    async def _send(self, cid: str, pid: str, notice: RecordingNotice) -> None:
        notify = self._notify.get((cid, pid))
        if notify is not None:
            try:
                await notify(recording_notice_message(notice))
            except Exception:
                log.warning("recording message to participant %s failed", pid)

    async def join(self, consultation_id: str, participant_id: str, max_participants: int,
                   notify: Notify, *, resume: bool = False) -> MediaSession | None:
        inner = await self.inner.join(consultation_id, participant_id, max_participants, notify,
                                      resume=resume)
        controller = self._controllers.get(consultation_id)
        if controller is None:
            cid = consultation_id

            async def send(pid: str, notice: RecordingNotice) -> None:
                await self._send(cid, pid, notice)

            controller = self._factory(consultation_id, send)
            self._controllers[consultation_id] = controller
        self._notify[(consultation_id, participant_id)] = notify
        await controller.joined(participant_id, is_host=participant_id == HOST_PARTICIPANT_ID)
        return _RecordingSession(self, consultation_id, participant_id, inner)

    async def drop(self, consultation_id: str, participant_id: str) -> None:
        await self.inner.drop(consultation_id, participant_id)

    async def close_room(self, consultation_id: str) -> None:
        controller = self._controllers.pop(consultation_id, None)
        try:
            if controller is not None:
                await controller.end()
        finally:
            for key in [k for k in self._notify if k[0] == consultation_id]:
                del self._notify[key]
            await self.inner.close_room(consultation_id)

    async def close(self) -> None:
        for cid in list(self._controllers):
            controller = self._controllers.pop(cid)
            try:
                await controller.end()
            except Exception:
                log.exception("ending the recording of consultation %s failed", cid)
        await self.inner.close()


def recording_gateway(inner: MediaGateway, *, store: DocumentStore, keys: RecordingKeys,
                      evidence: ConsentEvidence, recordings_dir: Path, clock: Clock,
                      text_version: str, events: EventSink = NO_EVENTS,
                      e2ee_mode: Callable[[str], str] | None = None,
                      node_id: str = "") -> RecordingMediaGateway:
    """Wrap `inner`; each consultation's controller records from `inner`'s SFU room.
    `e2ee_mode(cid)` ("e2ee" | "hop"): the consultation's E2EE mode (escrow, docs/e2ee.md).
    `node_id`: the cluster node the recordings are written on, kept in their records."""

    def factory(cid: str, send: Send) -> RecordingController:
        escrow = None if e2ee_mode is None else RecordingEscrow(
            mode=lambda: e2ee_mode(cid), registry=RecordingKeyRegistry(store, clock),
            log=EscrowLog(store, clock), clock=clock)
        async def start_session(request_keyframe: Callable[[str], None]) -> RecordingSession:
            e2ee = None
            if escrow is not None and escrow.mode() == "e2ee":
                key = await escrow.registry.get()
                e2ee = {"recording_key_fingerprint": key.fingerprint if key else None}
            return await RecordingSession.start(
                store=store, keys=keys, recordings_dir=recordings_dir, consultation_id=cid,
                clock=clock, request_keyframe=request_keyframe, events=events, e2ee=e2ee,
                node_id=node_id)

        def room() -> MediaRoomLike | None:
            return inner.rooms.get(cid) if isinstance(inner, SfuMediaGateway) else None

        return RecordingController(cid, clock=clock, text_version=text_version,
                                   evidence=evidence, send=send, start_session=start_session,
                                   room=room, escrow=escrow)

    return RecordingMediaGateway(inner, factory)
