"""Recording consent for one consultation (DESIGN D6), layer 3: pure rules, time from a Clock.

Rules:
- only the host requests a recording; the request is the host's own consent; every other
  participant present is prompted;
- media is written only while a request is active and every participant present has said yes;
- a participant who joins during an active request is prompted, and writing pauses until they
  say yes (or leave); a participant who reconnects keeps the answer given to this request;
- anyone saying no, or withdrawing, at any moment stops the recording for everybody at once —
  a stop, not a pause: a new request (and new answers) is needed; the host may also stop;
- answers name the consent text version they were shown; a stale version is refused.

Methods return `Decision`s (what the caller applies: prompt X, start/pause/resume/stop writing)
and append `ConsentEvent`s (the evidence for the audit log) to `events`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from enum import Enum

from ..clock import Clock
from ..errors import Conflict, Forbidden, InvalidInput

CONSENT_TEXTS: dict[str, dict[str, str]] = {
    "2026-11-1": {
        "en": ("Your doctor asks to record this consultation (video and audio). The recording is "
               "encrypted, kept for a limited time under the clinic's retention policy, and "
               "used only for your care. Recording starts only if everyone present agrees. You "
               "can withdraw at any moment; recording then stops at once."),
        "fr": ("Votre médecin demande à enregistrer cette consultation (vidéo et son). "
               "L'enregistrement est chiffré, conservé pour une durée limitée selon la politique "
               "de conservation du cabinet et utilisé uniquement pour vos soins. Il ne commence "
               "que si toutes les personnes présentes sont d'accord. Vous pouvez retirer votre "
               "accord à tout moment ; l'enregistrement s'arrête alors immédiatement."),
    },
}


def consent_text(version: str, lang: str) -> str:
    try:
        texts = CONSENT_TEXTS[version]
    except KeyError:
        raise InvalidInput(f"unknown consent text version {version!r}") from None
    return texts.get(lang, texts["en"])


class ConsentPhase(Enum):
    IDLE = "idle"  # no request (never requested, or stopped)
    AWAITING = "awaiting"  # requested; waiting for answers; nothing written yet
    WRITING = "writing"  # everyone present consented
    PAUSED = "paused"  # was writing; someone present has not answered yet


class Answer(Enum):
    YES = "yes"
    NO = "no"


# Decisions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    participant_id: str
    request_id: str
    text_version: str


@dataclass(frozen=True)
class StartWriting:
    request_id: str


@dataclass(frozen=True)
class PauseWriting:
    request_id: str
    waiting_for: tuple[str, ...]


@dataclass(frozen=True)
class ResumeWriting:
    request_id: str


@dataclass(frozen=True)
class StopWriting:
    request_id: str
    by: str  # participant id who refused/withdrew, or the host who stopped
    reason: str  # "refused" | "withdrawn" | "host_stopped" | "consultation_ended"
    was_writing: bool  # False when nothing had been written yet (cancelled request)


Decision = Prompt | StartWriting | PauseWriting | ResumeWriting | StopWriting


@dataclass(frozen=True)
class ConsentEvent:
    """Evidence: who did what, when, under which consent text. Ids only, no names."""

    consultation_id: str
    request_id: str
    participant_id: str
    action: str  # "requested" | "granted" | "refused" | "withdrawn" | "stopped" | "prompted"
    text_version: str
    at: float


@dataclass
class _Request:
    request_id: str
    host_id: str
    text_version: str
    answers: dict[str, Answer] = field(default_factory=dict)
    ever_written: bool = False


class ConsentMachine:
    def __init__(self, consultation_id: str, clock: Clock, text_version: str) -> None:
        consent_text(text_version, "en")  # validates the version
        self.consultation_id = consultation_id
        self._clock = clock
        self._text_version = text_version
        self._present: dict[str, bool] = {}  # participant id -> is host
        self._request: _Request | None = None
        self.phase = ConsentPhase.IDLE
        self.events: list[ConsentEvent] = []

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(self._present)

    @property
    def request_id(self) -> str | None:
        return self._request.request_id if self._request else None

    def waiting_for(self) -> tuple[str, ...]:
        req = self._request
        if req is None:
            return ()
        return tuple(p for p in self._present if req.answers.get(p) is not Answer.YES)

    # presence ------------------------------------------------------------------------------
    def participant_joined(self, participant_id: str, *, is_host: bool = False) -> list[Decision]:
        self._present[participant_id] = is_host
        req = self._request
        if req is None or req.answers.get(participant_id) is Answer.YES:
            return []
        decisions: list[Decision] = [Prompt(participant_id, req.request_id, req.text_version)]
        self._event(participant_id, "prompted")
        return decisions + self._settle()

    def participant_left(self, participant_id: str) -> list[Decision]:
        if self._present.pop(participant_id, None) is None:
            return []
        return self._settle()

    # the host ------------------------------------------------------------------------------
    def request(self, host_id: str) -> list[Decision]:
        if not self._present.get(host_id, False):
            raise Forbidden("only the host present in the consultation can request recording")
        if self._request is not None:
            raise Conflict("a recording request is already active")
        req = _Request(f"rq-{secrets.token_hex(8)}", host_id, self._text_version)
        req.answers[host_id] = Answer.YES
        self._request = req
        self.phase = ConsentPhase.AWAITING
        self._event(host_id, "requested")
        decisions: list[Decision] = []
        for pid in self._present:
            if pid != host_id:
                decisions.append(Prompt(pid, req.request_id, req.text_version))
                self._event(pid, "prompted")
        return decisions + self._settle()

    def stop(self, host_id: str) -> list[Decision]:
        req = self._require_request()
        if host_id != req.host_id and not self._present.get(host_id, False):
            raise Forbidden("only the host can stop the recording")
        return self._stop(host_id, "host_stopped", "stopped")

    # participants --------------------------------------------------------------------------
    def answer(self, participant_id: str, answer: Answer, *, request_id: str,
               text_version: str) -> list[Decision]:
        req = self._require_request()
        if participant_id not in self._present:
            raise Conflict("only a participant present can answer")
        if request_id != req.request_id:
            raise Conflict("this consent prompt is no longer current")
        if text_version != req.text_version:
            raise InvalidInput(f"consent text version {text_version!r} is not the one asked")
        if answer is Answer.NO:
            return self._stop(participant_id, "refused", "refused")
        if req.answers.get(participant_id) is Answer.YES:
            return []
        req.answers[participant_id] = Answer.YES
        self._event(participant_id, "granted")
        return self._settle()

    def withdraw(self, participant_id: str) -> list[Decision]:
        self._require_request()
        if participant_id not in self._present:
            raise Conflict("only a participant present can withdraw")
        return self._stop(participant_id, "withdrawn", "withdrawn")

    def end(self) -> list[Decision]:
        """The consultation ends: stop whatever is active."""
        if self._request is None:
            return []
        return self._stop("system", "consultation_ended", "stopped")

    # internals -----------------------------------------------------------------------------
    def _require_request(self) -> _Request:
        if self._request is None:
            raise Conflict("no recording request is active")
        return self._request

    def _stop(self, by: str, reason: str, action: str) -> list[Decision]:
        req = self._require_request()
        self._event(by, action)
        self._request = None
        self.phase = ConsentPhase.IDLE
        return [StopWriting(req.request_id, by, reason, req.ever_written)]

    def _settle(self) -> list[Decision]:
        req = self._request
        if req is None:
            return []
        waiting = self.waiting_for()
        if not waiting and self._present:
            if self.phase is ConsentPhase.AWAITING:
                self.phase = ConsentPhase.WRITING
                req.ever_written = True
                return [StartWriting(req.request_id)]
            if self.phase is ConsentPhase.PAUSED:
                self.phase = ConsentPhase.WRITING
                return [ResumeWriting(req.request_id)]
            return []
        if self.phase is ConsentPhase.WRITING:
            self.phase = ConsentPhase.PAUSED
            return [PauseWriting(req.request_id, waiting)]
        return []

    def _event(self, participant_id: str, action: str) -> None:
        req = self._request
        self.events.append(ConsentEvent(
            self.consultation_id, req.request_id if req else "", participant_id, action,
            req.text_version if req else self._text_version, self._clock.now()))


def export_consent_record(consultation_id: str, events: list[ConsentEvent]) -> str:
    """A consultation's consent record as JSON (for the patient, the file, the auditor)."""
    mine = [asdict(e) for e in events if e.consultation_id == consultation_id]
    versions = sorted({e["text_version"] for e in mine})
    return json.dumps({"consultation_id": consultation_id, "events": mine,
                       "texts": {v: CONSENT_TEXTS.get(v, {}) for v in versions}},
                      ensure_ascii=False, indent=2, sort_keys=True)
