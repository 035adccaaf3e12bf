"""Participant records and sessions (patients and guests, no account).

Joining redeems an invite and creates a participant (waiting) plus a session secret that the API
puts in the `tc_participant` cookie. Only the sha256 of the secret is stored. The session lets
the participant reconnect to that one consultation until it ends or they are removed, denied or
leave. Participant states follow models.PARTICIPANT_TRANSITIONS.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import Conflict, InvalidInput, NotFound, Unauthenticated
from ..store.base import JSONDict, Store
from .consultations import UNSCHEDULED_WINDOW_S, ConsultationService
from .invites import InviteService, invite_invalid
from .models import (
    PARTICIPANT_TRANSITIONS,
    AuditSink,
    DeviceCheck,
    InviteRole,
    Participant,
    ParticipantState,
    token_hash,
)

DOC_KIND = "participant"
SESSION_KIND = "participant-session"
DISPLAY_NAME_MAX = 60
SESSION_TTL_S = UNSCHEDULED_WINDOW_S + 12 * 3600
ACTIVE_STATES = frozenset({ParticipantState.WAITING, ParticipantState.ADMITTED})
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
class JoinResult:
    participant: Participant
    session_secret: str  # goes into the cookie; never stored, never logged


class ParticipantService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        audit: AuditSink,
        consultations: ConsultationService,
        invites: InviteService,
    ) -> None:
        self._store = store
        self._clock = clock
        self._audit = audit
        self._consultations = consultations
        self._invites = invites

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
            raise invite_invalid()
        active = [p for p in await self.list_for(consultation.id) if p.state in ACTIVE_STATES]
        if len(active) + 1 >= consultation.max_participants:  # the host takes one seat
            await self._audit.record(
                "invite.redeem", actor=None, target=grant.invite_id, outcome="consultation_full",
                consultation_id=consultation.id,
            )
            raise Conflict("This consultation is full.", code="consultation_full")
        await self._invites.consume(grant)
        secret = secrets.token_urlsafe(24)
        participant = Participant(
            participant_id="p_" + secrets.token_hex(8),
            consultation_id=consultation.id,
            role=grant.role,
            display_name=name,
            state=ParticipantState.WAITING,
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
        return JoinResult(participant=participant, session_secret=secret)

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
        self, consultation_id: str, participant_id: str, target: ParticipantState, *, actor: str
    ) -> Participant:
        """Move a participant along the state machine; Conflict when the move is not allowed.
        Leaving the active states ends the participant's session."""
        doc = await self._store.get_doc(DOC_KIND, participant_id) if participant_id else None
        if doc is None or doc["consultation_id"] != consultation_id:
            raise NotFound("No such participant.", code="participant_not_found")
        current = ParticipantState(doc["state"])
        if target not in PARTICIPANT_TRANSITIONS[current]:
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
            if ParticipantState(doc["state"]) in ACTIVE_STATES:
                updated = {**doc, "state": ParticipantState.LEFT.value}
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
            state=ParticipantState(doc["state"]),
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


def _verb(target: ParticipantState) -> str:
    return {
        ParticipantState.ADMITTED: "admit",
        ParticipantState.DENIED: "deny",
        ParticipantState.REMOVED: "remove",
        ParticipantState.LEFT: "leave",
        ParticipantState.WAITING: "wait",
    }[target]
