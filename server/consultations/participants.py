"""Participant records and sessions (patients and guests, no account).

Joining redeems an invite and creates a participant (waiting) plus a session secret that the API
puts in the `tc_participant` cookie. Only the sha256 of the secret is stored. The session lets
the participant reconnect to that one consultation until it ends or they are removed, denied or
leave. Participant states follow models.ADMISSION_TRANSITIONS.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..clock import Clock
from ..errors import Conflict, InvalidInput, NotFound, Unauthenticated
from ..store.base import JSONDict, Store
from .invites import InviteService, invite_invalid, invite_used
from .models import (
    ADMISSION_TRANSITIONS,
    AdmissionState,
    AuditSink,
    DeviceCheck,
    InviteRole,
    Participant,
    token_hash,
)
from .service import UNSCHEDULED_WINDOW_S, ConsultationService

DOC_KIND = "participant"
SESSION_KIND = "participant-session"
SEAT_KIND = "consultation-seat"  # store seats, by invite id: one per active participant (host implied)
DISPLAY_NAME_MAX = 60
SESSION_TTL_S = UNSCHEDULED_WINDOW_S + 12 * 3600
ACTIVE_STATES = frozenset({AdmissionState.WAITING, AdmissionState.ADMITTED})
_ZWJ = "\u200d"


def validate_display_name(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("Please type your name.", code="invalid_display_name")
    name = raw.strip()
    bad = any(unicodedata.category(ch).startswith("C") and ch != _ZWJ for ch in name)
    if not 1 <= len(name) <= DISPLAY_NAME_MAX or bad:
        raise InvalidInput(
            f"Your name must be 1 to {DISPLAY_NAME_MAX} printable characters.", code="invalid_display_name"
        )
    return name


def validate_device_check(raw: object) -> DeviceCheck:
    if raw is None:
        return DeviceCheck.SKIPPED
    if not isinstance(raw, str) or raw not in {d.value for d in DeviceCheck}:
        raise InvalidInput(
            'device_check must be "passed", "failed" or "skipped".', code="invalid_device_check"
        )
    return DeviceCheck(raw)


@dataclass(frozen=True)
class LinkCheck:
    """What a link leads to before anything is consumed: a fresh join ("join"), or the
    participant session already held on this device for the invite it redeemed ("rejoin")."""

    status: str  # "join" | "rejoin"
    consultation_id: str


@dataclass(frozen=True)
class JoinResult:
    participant: Participant
    session_secret: str  # goes into the cookie; never stored, never logged


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class ParticipantService:
    _store: Store
    _clock: Clock
    _audit: AuditSink
    _consultations: ConsultationService
    _invites: InviteService

    async def join(
        self, token: object, display_name: object, device_check: object, *, consultation_id: str | None = None
    ) -> JoinResult:
        name = validate_display_name(display_name)
        check = validate_device_check(device_check)
        grant = await self._invites.check(token, consultation_id=consultation_id)
        consultation = await self._consultations.get(grant.consultation_id)
        if not consultation.is_live:
            await self._audit.record(
                "invite.redeem", actor=None, target=grant.invite_id, outcome="invite_invalid",
                consultation_id=grant.consultation_id,
            )
            metrics.JOIN_FAILURES.labels(stage="invite", reason="invite_invalid").inc()
            raise invite_invalid()
        # Check-and-take in one atomic store operation (the host takes one seat): of concurrent
        # joins for the last seat exactly one wins, on every backend and across processes. The
        # seat belongs to the invite, so racing redemptions of one link share one seat and the
        # token decides which of them gets in (the losers leave the winner's seat alone).
        if not await self._store.take_seat(
            SEAT_KIND, consultation.id, grant.invite_id, consultation.max_participants - 1, SESSION_TTL_S
        ):
            await self._audit.record(
                "invite.redeem", actor=None, target=grant.invite_id, outcome="consultation_full",
                consultation_id=consultation.id,
            )
            metrics.JOIN_FAILURES.labels(stage="invite", reason="consultation_full").inc()
            raise Conflict("This consultation is full.", code="consultation_full")
        await self._invites.consume(grant)
        secret = secrets.token_urlsafe(24)
        participant = Participant(
            participant_id="p_" + secrets.token_hex(8),
            consultation_id=consultation.id,
            role=grant.role,
            display_name=name,
            state=AdmissionState.WAITING,
            device_check=check,
            waiting_since=self._clock.now(),
            invite_id=grant.invite_id,
        )
        session_key = token_hash(secret)
        await self._put(participant, session_key)
        await self._store.put_doc(
            SESSION_KIND, session_key,
            {"participant_id": participant.participant_id, "consultation_id": consultation.id},
            ttl_s=SESSION_TTL_S,
        )
        await self._audit.record(
            "invite.redeem", actor=participant.participant_id, target=grant.invite_id, outcome="ok",
            consultation_id=consultation.id,
        )
        metrics.JOINS.labels(stage="invite").inc()
        return JoinResult(participant=participant, session_secret=secret)

    async def check_link(self, token: object, session_secret: str | None) -> LinkCheck:
        """Read-only: may this link still be used here? Gone (invite_used / invite_invalid,
        one answer shape) otherwise. A used link leads back in only through the participant
        session that redeemed it (same device, the cookie): the token is never redeemed twice."""
        grant, used = await self._invites.peek(token)
        if grant is not None:
            consultation = await self._consultations.get(grant.consultation_id)
            if consultation.is_live:
                return LinkCheck("join", consultation.id)
            raise invite_invalid()
        if used is None:
            raise invite_invalid()
        try:
            participant = await self.authenticate(session_secret)
        except Unauthenticated:
            raise invite_used() from None
        if participant.invite_id != used.get("invite_id"):
            raise invite_used()
        return LinkCheck("rejoin", participant.consultation_id)

    async def authenticate(self, secret: str | None) -> Participant:
        """The participant holding this session secret, while they may still take part."""
        if not secret:
            raise Unauthenticated("No participant session.", code="no_participant_session")
        session = await self._store.get_doc(SESSION_KIND, token_hash(secret))
        doc = await self._store.get_doc(DOC_KIND, session["participant_id"]) if session else None
        if doc is None:
            raise Unauthenticated("Your session has ended.", code="participant_session_ended")
        participant = self._from_doc(doc)
        if participant.state not in ACTIVE_STATES:
            raise Unauthenticated("Your session has ended.", code="participant_session_ended")
        consultation = await self._consultations.get(participant.consultation_id)
        if not consultation.is_live:
            raise Unauthenticated("This consultation has ended.", code="participant_session_ended")
        return participant

    async def get(self, consultation_id: str, participant_id: str) -> Participant:
        doc = await self._store.get_doc(DOC_KIND, participant_id) if participant_id else None
        if doc is None or doc["consultation_id"] != consultation_id:
            raise NotFound("No such participant.", code="participant_not_found")
        return self._from_doc(doc)

    async def list_for(self, consultation_id: str) -> list[Participant]:
        docs = await self._store.find_docs(DOC_KIND, "consultation_id", consultation_id)
        return sorted((self._from_doc(d) for d in docs), key=lambda p: (p.waiting_since, p.participant_id))

    async def transition(
        self, consultation_id: str, participant_id: str, target: AdmissionState, *, actor: str
    ) -> Participant:
        """Move a participant along the state machine; Conflict when the move is not allowed.
        Leaving the active states ends the participant's session."""
        doc = await self._store.get_doc(DOC_KIND, participant_id) if participant_id else None
        if doc is None or doc["consultation_id"] != consultation_id:
            raise NotFound("No such participant.", code="participant_not_found")
        current = AdmissionState(doc["state"])
        if target not in ADMISSION_TRANSITIONS[current]:
            await self._audit.record(
                f"participant.{_verb(target)}", actor=actor, target=participant_id,
                outcome="wrong_state", consultation_id=consultation_id,
            )
            raise Conflict(f"This participant is {current.value}.", code="wrong_participant_state")
        updated = {**doc, "state": target.value}
        await self._store.put_doc(
            DOC_KIND, participant_id, updated, index={"consultation_id": consultation_id}
        )
        if target not in ACTIVE_STATES:
            await self._store.delete_doc(SESSION_KIND, doc["session_key"])
            await self._store.release_seat(SEAT_KIND, consultation_id, doc["invite_id"])
        await self._audit.record(
            f"participant.{_verb(target)}", actor=actor, target=participant_id, outcome="ok",
            consultation_id=consultation_id,
        )
        return self._from_doc(updated)

    async def end_all(self, consultation_id: str) -> list[Participant]:
        """Ending a consultation: every session stops working; active participants leave."""
        ended: list[Participant] = []
        for doc in await self._store.find_docs(DOC_KIND, "consultation_id", consultation_id):
            await self._store.delete_doc(SESSION_KIND, doc["session_key"])
            await self._store.release_seat(SEAT_KIND, consultation_id, doc["invite_id"])
            if AdmissionState(doc["state"]) in ACTIVE_STATES:
                updated = {**doc, "state": AdmissionState.LEFT.value}
                await self._store.put_doc(
                    DOC_KIND, doc["participant_id"], updated, index={"consultation_id": consultation_id}
                )
                ended.append(self._from_doc(updated))
        return ended

    @staticmethod
    def _from_doc(doc: JSONDict) -> Participant:
        return Participant(
            participant_id=doc["participant_id"],
            consultation_id=doc["consultation_id"],
            role=InviteRole(doc["role"]),
            display_name=doc["display_name"],
            state=AdmissionState(doc["state"]),
            device_check=DeviceCheck(doc["device_check"]),
            waiting_since=float(doc["waiting_since"]),
            invite_id=doc["invite_id"],
        )

    async def _put(self, p: Participant, session_key: str) -> None:
        doc: dict[str, Any] = {
            "participant_id": p.participant_id,
            "consultation_id": p.consultation_id,
            "role": p.role.value,
            "display_name": p.display_name,
            "state": p.state.value,
            "device_check": p.device_check.value,
            "waiting_since": p.waiting_since,
            "invite_id": p.invite_id,
            "session_key": session_key,
        }
        await self._store.put_doc(
            DOC_KIND, p.participant_id, doc, index={"consultation_id": p.consultation_id}
        )


def _verb(target: AdmissionState) -> str:
    return {
        AdmissionState.ADMITTED: "admit",
        AdmissionState.DENIED: "deny",
        AdmissionState.REMOVED: "remove",
        AdmissionState.LEFT: "leave",
        AdmissionState.WAITING: "wait",
    }[target]
