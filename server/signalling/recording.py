"""Recording consent over the consultation WebSocket (docs/api.md "Recording"), layer 5.

The seam: `RecordingMediaGateway` wraps the hub's media gateway. Joining the call (an admitted
participant entering it) makes the participant present for consent; leaving the call makes
them absent; closing the consultation's room ends any recording. The recording message types
(RECORDING_MESSAGE_TYPES) reach the participant's media session like media messages and are
handled here instead of by the SFU:

- `record-request` {} (host): ask everyone present for consent;
- `record-stop` {} (host): stop;
- `consent` {answer: "yes"|"no", request_id?, text_version?}: answer the current prompt;
- `consent-withdraw` {}: withdraw (stops the recording for everyone);
- `language` {lang: "en"|"fr"}: the language of consent texts for this participant.

Server messages: `consent-prompt` {request_id, text_version, lang, text}, `recording-state`
{state: off|waiting|recording|paused}.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import InvalidInput
from ..recording.controller import MediaRoomLike, RecordingController
from ..recording.evidence import ConsentEvidence
from ..recording.keys import RecordingKeys
from ..recording.session import RecordingSession
from ..store.base import DocumentStore
from .hub import HOST_PARTICIPANT_ID
from .media_gateway import MediaGateway, MediaSession, Notify, SfuMediaGateway

log = logging.getLogger("teleconsult.recording")

RECORDING_MESSAGE_TYPES = frozenset({"record-request", "record-stop", "consent",
                                     "consent-withdraw", "language"})

ControllerFactory = Callable[[str, Callable[[str, Mapping[str, Any]], Awaitable[None]]],
                            RecordingController]


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidInput(f"{name} must be a short string.", code="invalid_field")
    return value


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
        if kind == "record-request":
            await controller.request(self._pid)
        elif kind == "record-stop":
            await controller.stop(self._pid)
        elif kind == "consent":
            answer = message.get("answer")
            if not isinstance(answer, str):
                raise InvalidInput('answer must be "yes" or "no".', code="invalid_field")
            await controller.answer(self._pid, answer,
                                    request_id=_optional_str(message, "request_id"),
                                    text_version=_optional_str(message, "text_version"))
        elif kind == "consent-withdraw":
            await controller.withdraw(self._pid)
        else:
            lang = message.get("lang")
            await controller.set_language(self._pid, lang if isinstance(lang, str) else "")

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

    async def _send(self, cid: str, pid: str, message: Mapping[str, Any]) -> None:
        notify = self._notify.get((cid, pid))
        if notify is not None:
            try:
                await notify(message)
            except Exception:
                log.warning("recording message to participant %s failed", pid)

    async def join(self, consultation_id: str, participant_id: str, max_participants: int,
                   notify: Notify) -> MediaSession | None:
        inner = await self.inner.join(consultation_id, participant_id, max_participants, notify)
        controller = self._controllers.get(consultation_id)
        if controller is None:
            cid = consultation_id

            async def send(pid: str, message: Mapping[str, Any]) -> None:
                await self._send(cid, pid, message)

            controller = self._factory(consultation_id, send)
            self._controllers[consultation_id] = controller
        self._notify[(consultation_id, participant_id)] = notify
        await controller.joined(participant_id, is_host=participant_id == HOST_PARTICIPANT_ID)
        return _RecordingSession(self, consultation_id, participant_id, inner)

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
                      text_version: str) -> RecordingMediaGateway:
    """Wrap `inner`; each consultation's controller records from `inner`'s SFU room."""

    def factory(cid: str, send: Callable[[str, Mapping[str, Any]], Awaitable[None]],
                ) -> RecordingController:
        async def start_session(request_keyframe: Callable[[str], None]) -> RecordingSession:
            return await RecordingSession.start(
                store=store, keys=keys, recordings_dir=recordings_dir, consultation_id=cid,
                clock=clock, request_keyframe=request_keyframe)

        def room() -> MediaRoomLike | None:
            return inner.rooms.get(cid) if isinstance(inner, SfuMediaGateway) else None

        return RecordingController(cid, clock=clock, text_version=text_version,
                                   evidence=evidence, send=send, start_session=start_session,
                                   room=room)

    return RecordingMediaGateway(inner, factory)
