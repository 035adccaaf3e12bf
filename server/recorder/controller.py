"""The live recording of one consultation, layer 4: consent rules (ConsentMachine) applied to a
RecordingSession fed by the SFU's per-track sinks. No aiohttp, no WebSocket: messages go out
through the `send(participant_id, notice)` callable the signalling layer gives, as typed
notices (`RecordingStateNotice`, `ConsentPromptNotice`); their JSON is built in
server/signalling/recording_messages.py.

- host `request(pid)`: every other participant present gets a consent prompt (in their
  language, with the text version); media is written only while everyone present said yes;
- `joined(pid)` during a request: the joiner is prompted and writing pauses until they say yes;
- any `answer(pid, "no")` / `withdraw(pid)` / host `stop(pid)` stops for everyone at once;
- the recording state (off|waiting|recording|paused) goes to everyone present whenever it
  changes (and to each joiner), so the indicator shows only while media is written;
- every ConsentEvent (prompt, answer, withdrawal, with the consent text version) is evidence:
  audit log + consent record (evidence.py).

Recorders attach a sink to the participant's "audio" and "video" PublishedTracks (screen
shares are not recorded); a recorder's keyframe requests go to the track's rate-limited PLI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..clock import Clock
from ..errors import Conflict, InvalidInput
from ..recording.consent import (
    Answer,
    ConsentMachine,
    ConsentPhase,
    Decision,
    PauseWriting,
    Prompt,
    ResumeWriting,
    StartWriting,
    StopWriting,
    consent_text,
)
from ..recording.escrow import EscrowRecord, RecordingEscrow, RecordingPublicKey
from ..recording.evidence import ConsentEvidence
from .muxer import ParticipantRecorder
from .session import RecordingSession

log = logging.getLogger(__name__)

RECORDED_LABELS = ("audio", "video")
LANGUAGES = ("en", "fr")
PHASE_STATES = {ConsentPhase.IDLE: "off", ConsentPhase.AWAITING: "waiting",
                ConsentPhase.WRITING: "recording", ConsentPhase.PAUSED: "paused"}



@dataclass(frozen=True)
class RecordingStateNotice:
    state: str  # "off" | "waiting" | "recording" | "paused"
    recording_key: Mapping[str, str] | None = None  # E2EE mode: the clinic's {pub, fingerprint}


@dataclass(frozen=True)
class ConsentPromptNotice:
    request_id: str
    text_version: str
    lang: str
    text: str


RecordingNotice = RecordingStateNotice | ConsentPromptNotice
Send = Callable[[str, RecordingNotice], Awaitable[None]]
StartSession = Callable[[Callable[[str], None]], Awaitable[RecordingSession]]


class TrackLike(Protocol):
    publisher_id: str
    label: str

    def add_sink(self, sink: Callable[[Any], None]) -> None: ...

    def remove_sink(self, sink: Callable[[Any], None]) -> None: ...

    def request_keyframe(self) -> None: ...


class MediaRoomLike(Protocol):
    """What the controller needs of server.sfu.room.SfuRoom."""

    def published_tracks(self) -> list[Any]: ...

    def add_publication_listener(self, listener: Callable[[Any, bool], None]) -> None: ...

    def remove_publication_listener(self, listener: Callable[[Any, bool], None]) -> None: ...


@dataclass
class _Attached:
    recorder: ParticipantRecorder
    sinks: dict[int, tuple[TrackLike, Callable[[Any], None]]] = field(default_factory=dict)


class RecordingController:
    def __init__(self, consultation_id: str, *, clock: Clock, text_version: str,
                 evidence: ConsentEvidence, send: Send, start_session: StartSession,
                 room: Callable[[], MediaRoomLike | None],
                 escrow: RecordingEscrow | None = None) -> None:
        self.consultation_id = consultation_id
        self._escrow = escrow  # E2EE: the clinic's recording key and the escrow records
        self._recording_key: RecordingPublicKey | None = None
        self._escrow_waiting: list[EscrowRecord] = []
        self._host_pid: str | None = None
        self.machine = ConsentMachine(consultation_id, clock, text_version)
        self._evidence = evidence
        self._send = send
        self._start_session = start_session
        self._room = room
        self._lang: dict[str, str] = {}
        self._pending_prompt: dict[str, Prompt] = {}
        self._session: RecordingSession | None = None
        self._attached: dict[str, _Attached] = {}
        self._listening: MediaRoomLike | None = None
        self._state = "off"
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()

    @property
    def state(self) -> str:
        return self._state

    @property
    def session(self) -> RecordingSession | None:
        return self._session

    # inputs ---------------------------------------------------------------------------------
    async def joined(self, pid: str, *, is_host: bool) -> None:
        async with self._lock:
            if is_host:
                self._host_pid = pid
            await self._apply(self.machine.participant_joined(pid, is_host=is_host))
            await self._refresh_recording_key()
            await self._send(pid, self._state_notice(self._state))
            if self._session is not None:
                self._add_recorder(pid)

    async def left(self, pid: str) -> None:
        async with self._lock:
            self._pending_prompt.pop(pid, None)
            self._lang.pop(pid, None)
            await self._detach(pid)
            await self._apply(self.machine.participant_left(pid))

    async def set_language(self, pid: str, lang: str) -> None:
        if lang not in LANGUAGES:
            raise InvalidInput("lang must be en or fr.", code="invalid_field")
        async with self._lock:
            self._lang[pid] = lang
            prompt = self._pending_prompt.get(pid)
            if prompt is not None:
                await self._prompt(prompt)

    async def request(self, pid: str) -> None:
        async with self._lock:
            if self._e2ee_on():
                await self._refresh_recording_key()
                if self._recording_key is None:
                    raise InvalidInput(
                        "This call is end-to-end encrypted: recording needs the clinic's "
                        "recording key (teleconsult keys recording-public-key set).",
                        code="recording_key_missing")
            await self._apply(self.machine.request(pid))

    async def escrow_key(self, pid: str, wrap: EscrowRecord) -> None:
        """`recording-key` from the host while a recording waits or runs: keep the wrap."""
        if self._escrow is None or pid != self._host_pid:
            raise InvalidInput("Only the host sends recording keys.", code="forbidden")
        record = self._escrow.stamp(wrap)
        async with self._lock:
            if self._state not in ("waiting", "recording", "paused"):
                raise Conflict("No recording is active.", code="recording_not_active")
            session = self._session
            if session is None:
                self._escrow_waiting.append(record)  # stored when the recording starts
                return
            await self._escrow.log.append(session.recording_id, self.consultation_id, [record])

    def _e2ee_on(self) -> bool:
        return self._escrow is not None and self._escrow.mode() == "e2ee"

    async def _refresh_recording_key(self) -> None:
        if self._escrow is not None and self._e2ee_on():
            self._recording_key = await self._escrow.registry.get()

    def _state_notice(self, state: str) -> RecordingStateNotice:
        if self._e2ee_on() and self._recording_key is not None:
            return RecordingStateNotice(state, self._recording_key.public())
        return RecordingStateNotice(state)

    async def answer(self, pid: str, answer: str, *, request_id: str | None,
                     text_version: str | None) -> None:
        try:
            parsed = Answer(answer)
        except ValueError:
            raise InvalidInput('answer must be "yes" or "no".', code="invalid_field") from None
        async with self._lock:
            current = self.machine.request_id
            prompt = self._pending_prompt.get(pid)
            decisions = self.machine.answer(
                pid, parsed, request_id=request_id or current or "",
                text_version=text_version or (prompt.text_version if prompt else ""))
            self._pending_prompt.pop(pid, None)
            await self._apply(decisions)

    async def withdraw(self, pid: str) -> None:
        async with self._lock:
            await self._apply(self.machine.withdraw(pid))

    async def stop(self, pid: str) -> None:
        async with self._lock:
            await self._apply(self.machine.stop(pid))

    async def end(self) -> None:
        """The consultation ends (or the server stops): stop and close whatever runs."""
        async with self._lock:
            await self._apply(self.machine.end())
            await self._stop_session()

    # decisions --------------------------------------------------------------------------------
    async def _apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Prompt):
                self._pending_prompt[decision.participant_id] = decision
                await self._prompt(decision)
            elif isinstance(decision, StartWriting):
                await self._start()
            elif isinstance(decision, PauseWriting):
                if self._session is not None:
                    await self._session.pause()
            elif isinstance(decision, ResumeWriting):
                if self._session is not None:
                    await self._session.resume()
            elif isinstance(decision, StopWriting):
                self._pending_prompt.clear()
                await self._stop_session()
        await self._flush_evidence()
        await self._broadcast_state()

    async def _prompt(self, prompt: Prompt) -> None:
        lang = self._lang.get(prompt.participant_id, "en")
        await self._send(prompt.participant_id, ConsentPromptNotice(
            prompt.request_id, prompt.text_version, lang, consent_text(prompt.text_version, lang)))

    async def _flush_evidence(self) -> None:
        events, self.machine.events = self.machine.events, []
        if events:
            await self._evidence.record(events)

    async def _broadcast_state(self) -> None:
        state = PHASE_STATES[self.machine.phase]
        if state == self._state:
            return
        self._state = state
        if state == "off":
            self._escrow_waiting.clear()
        for pid in self.machine.present:
            await self._send(pid, self._state_notice(state))

    # media ------------------------------------------------------------------------------------
    async def _start(self) -> None:
        if self._session is not None:
            return
        self._session = await self._start_session(self._request_keyframe)
        waiting, self._escrow_waiting = self._escrow_waiting, []
        if waiting and self._escrow is not None:
            await self._escrow.log.append(self._session.recording_id, self.consultation_id, waiting)
        room = self._room()
        if room is not None:
            room.add_publication_listener(self._on_publication)
            self._listening = room
        for pid in self.machine.present:
            self._add_recorder(pid)

    def _add_recorder(self, pid: str) -> None:
        session = self._session
        if session is None or pid in self._attached:
            return
        attached = _Attached(session.add_participant(pid))
        self._attached[pid] = attached
        room = self._room()
        for track in room.published_tracks() if room is not None else []:
            if track.publisher_id == pid:
                self._attach_track(attached, track)

    def _attach_track(self, attached: _Attached, track: TrackLike) -> None:
        if track.label not in RECORDED_LABELS or id(track) in attached.sinks:
            return
        rec, loop = attached.recorder, self._loop

        def sink(frame: Any) -> None:
            rec.on_packet(frame.kind, frame.data, frame.pts, frame.time_base, frame.is_keyframe,
                          loop.time())

        track.add_sink(sink)
        attached.sinks[id(track)] = (track, sink)
        if track.label == "video":
            track.request_keyframe()

    def _on_publication(self, track: Any, published: bool) -> None:
        attached = self._attached.get(track.publisher_id)
        if attached is None:
            return
        if published:
            self._attach_track(attached, track)
        else:
            entry = attached.sinks.pop(id(track), None)
            if entry is not None:
                entry[0].remove_sink(entry[1])

    def _request_keyframe(self, pid: str) -> None:
        attached = self._attached.get(pid)
        for track, _sink in attached.sinks.values() if attached is not None else ():
            if track.label == "video":
                track.request_keyframe()

    async def _detach(self, pid: str) -> None:
        attached = self._attached.pop(pid, None)
        if attached is None:
            return
        for track, sink in attached.sinks.values():
            track.remove_sink(sink)
        if self._session is not None:
            await self._session.remove_participant(pid)

    async def _stop_session(self) -> None:
        session = self._session
        if session is None:
            return
        for pid in list(self._attached):
            attached = self._attached.pop(pid)
            for track, sink in attached.sinks.values():
                track.remove_sink(sink)
        if self._listening is not None:
            self._listening.remove_publication_listener(self._on_publication)
            self._listening = None
        self._session = None
        try:
            await session.stop()
        except Exception:
            log.exception("stopping recording %s failed", session.recording_id)
