"""Value types of the rooms layer: state enums and frozen records (DESIGN §5.4, §5.5)."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol


class ConsultationState(enum.StrEnum):
    SCHEDULED = "scheduled"
    OPEN = "open"
    ENDED = "ended"
    EXPIRED = "expired"


class ParticipantState(enum.StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    LEFT = "left"
    REMOVED = "removed"
    DENIED = "denied"


# participant state machine: allowed transitions (guarded in participants.py)
PARTICIPANT_TRANSITIONS: dict[ParticipantState, frozenset[ParticipantState]] = {
    ParticipantState.WAITING: frozenset(
        {ParticipantState.ADMITTED, ParticipantState.DENIED, ParticipantState.LEFT, ParticipantState.REMOVED}
    ),
    ParticipantState.ADMITTED: frozenset({ParticipantState.LEFT, ParticipantState.REMOVED}),
    ParticipantState.LEFT: frozenset(),
    ParticipantState.REMOVED: frozenset(),
    ParticipantState.DENIED: frozenset(),
}


class InviteRole(enum.StrEnum):
    PATIENT = "patient"
    GUEST = "guest"


class InviteState(enum.StrEnum):
    OUTSTANDING = "outstanding"
    USED = "used"
    REVOKED = "revoked"
    EXPIRED = "expired"


class DeviceCheck(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class StaffRole(enum.StrEnum):
    DOCTOR = "doctor"
    ADMIN = "admin"


@dataclass(frozen=True)
class StaffActor:
    """Who acts, as the rooms layer sees it (built from the auth layer's principal)."""

    account_id: str
    role: str  # "doctor" | "admin" (anything else is treated as having no rights here)
    session_ref: str = ""  # a stable, non-secret reference to the staff session (hash)

    @property
    def is_admin(self) -> bool:
        return self.role == StaffRole.ADMIN


@dataclass(frozen=True)
class Consultation:
    id: str
    host_id: str
    label: str
    state: ConsultationState
    scheduled_at: float | None
    created_at: float
    max_participants: int
    opened_at: float | None = None
    ended_at: float | None = None

    @property
    def is_live(self) -> bool:
        return self.state in (ConsultationState.SCHEDULED, ConsultationState.OPEN)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "state": self.state.value,
            "scheduled_at": self.scheduled_at,
            "created_at": self.created_at,
            "max_participants": self.max_participants,
            "host_id": self.host_id,
        }


@dataclass(frozen=True)
class Invite:
    invite_id: str
    consultation_id: str
    role: InviteRole
    expires_at: float
    state: InviteState

    def public(self) -> dict[str, Any]:
        return {
            "invite_id": self.invite_id,
            "role": self.role.value,
            "expires_at": self.expires_at,
            "state": self.state.value,
        }


@dataclass(frozen=True)
class IssuedInvite:
    invite: Invite
    token: str  # shown once, never stored, never logged
    link: str


@dataclass(frozen=True)
class Participant:
    participant_id: str
    consultation_id: str
    role: InviteRole
    display_name: str
    state: ParticipantState
    device_check: DeviceCheck
    waiting_since: float
    invite_id: str

    def public(self) -> dict[str, Any]:
        return {
            "consultation_id": self.consultation_id,
            "participant_id": self.participant_id,
            "role": self.role.value,
            "display_name": self.display_name,
            "state": self.state.value,
        }

    def lobby_entry(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "display_name": self.display_name,
            "waiting_since": self.waiting_since,
            "device_check": self.device_check.value,
        }


class AuditSink(Protocol):
    """What the rooms layer needs from server.audit.AuditLog (ids only)."""

    async def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = ...,
        outcome: str = ...,
        consultation_id: str | None = ...,
    ) -> Any: ...


def token_hash(token: str) -> str:
    """sha256 hex of a secret token. Always computed, whatever the input, so malformed input
    takes the same path as a well-formed one."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
