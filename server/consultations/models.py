"""Value types of the consultations package: state enums and frozen records (DESIGN §5.4, §5.5)."""

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


class AdmissionState(enum.StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    LEFT = "left"
    REMOVED = "removed"
    DENIED = "denied"


# admission (lobby) state machine of a participant: allowed transitions (guarded in participants.py)
ADMISSION_TRANSITIONS: dict[AdmissionState, frozenset[AdmissionState]] = {
    AdmissionState.WAITING: frozenset(
        {AdmissionState.ADMITTED, AdmissionState.DENIED, AdmissionState.LEFT, AdmissionState.REMOVED}
    ),
    AdmissionState.ADMITTED: frozenset({AdmissionState.LEFT, AdmissionState.REMOVED}),
    AdmissionState.LEFT: frozenset(),
    AdmissionState.REMOVED: frozenset(),
    AdmissionState.DENIED: frozenset(),
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
    """Who acts, as the consultations package sees it (built from the auth layer's principal)."""

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
    e2ee: str = "required"  # E2EE policy: required | preferred | off (docs/e2ee.md)
    integration_id: str | None = None  # created through this integration's API key

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
            "e2ee": self.e2ee,
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
    state: AdmissionState
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
    """What the consultations package needs from server.audit.AuditLog (ids only)."""

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
