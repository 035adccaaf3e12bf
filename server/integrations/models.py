"""Value types of the integrations layer: scopes, an integration (its API key and webhook)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .events import EventType

KEY_PREFIX = "tck_"  # API keys: "tck_" + 43 base64url characters (256 bits)
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret); webhook signing secrets: "whsec_" + 43 base64url characters


class Scope(enum.StrEnum):
    """The only scopes there are: none reaches recordings, accounts or the audit log."""

    CONSULTATIONS_CREATE = "consultations:create"
    CONSULTATIONS_READ = "consultations:read"
    INVITES_CREATE = "invites:create"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Webhook:
    url: str
    events: frozenset[EventType]


@dataclass(frozen=True)
class Integration:
    """One integration and its API key (key id = integration id, "ik_" + 20 hex)."""

    id: str
    name: str  # the administrator's label ("booking tool"); never logged, never in an event
    scopes: frozenset[Scope]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    rate_limit_per_min: int
    webhook: Webhook | None

    def status(self, now: float) -> KeyStatus:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE

    def public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(s.value for s in self.scopes),
            "status": self.status(now).value,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "rate_limit_per_min": self.rate_limit_per_min,
            "webhook": None if self.webhook is None else {
                "url": self.webhook.url, "events": sorted(e.value for e in self.webhook.events)
            },
        }


@dataclass(frozen=True)
class IssuedKey:
    integration: Integration
    api_key: str  # shown once, stored only as its sha256


@dataclass(frozen=True)
class IssuedSecret:
    integration_id: str
    secret: str  # shown once; stored sealed (it must be read back to sign)
    previous_valid_until: float | None  # the overlap window of the secret it replaces
