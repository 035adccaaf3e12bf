"""Consultations: create, see, open, end, expire. Only the host doctor acts; administrators may
list and end; anyone else gets NotFound (existence is not revealed)."""

from __future__ import annotations

import math
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..config import E2EE_POLICIES, Settings
from ..errors import Conflict, InvalidInput, NotFound
from ..integrations.events import NO_EVENTS, EventSink, EventType
from ..store.base import JSONDict, Store
from .models import AuditSink, Consultation, ConsultationState, StaffActor

KIND = "consultation"
LABEL_MAX = 64
MIN_PARTICIPANTS = 2
MAX_PARTICIPANTS = 8
SCHEDULED_WINDOW_S = 12 * 3600  # a scheduled consultation expires this long after its time
UNSCHEDULED_WINDOW_S = 24 * 3600  # an unscheduled one this long after creation
MAX_SCHEDULE_AHEAD_S = 366 * 24 * 3600


def _validate_label(raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InvalidInput("The label must be text.", code="invalid_label")
    label = raw.strip()
    if len(label) > LABEL_MAX or any(unicodedata.category(ch).startswith("C") for ch in label):
        raise InvalidInput(
            f"The label must be at most {LABEL_MAX} printable characters.", code="invalid_label"
        )
    return label


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class ConsultationService:
    _store: Store
    _clock: Clock
    _settings: Settings
    _audit: AuditSink
    _events: EventSink = NO_EVENTS

    # -- reading -----------------------------------------------------------------------------

    def _from_doc(self, doc: JSONDict) -> Consultation:
        state = ConsultationState(doc["state"])
        if state is ConsultationState.SCHEDULED and self._clock.now() >= self._window_end(doc):
            state = ConsultationState.EXPIRED
        return Consultation(
            id=doc["id"],
            host_id=doc["host_id"],
            label=doc["label"],
            state=state,
            scheduled_at=doc["scheduled_at"],
            created_at=doc["created_at"],
            max_participants=doc["max_participants"],
            opened_at=doc.get("opened_at"),
            ended_at=doc.get("ended_at"),
            e2ee=str(doc.get("e2ee", "off")),  # consultations made before E2EE: hop by hop
            integration_id=doc.get("integration_id"),
        )

    @staticmethod
    def _window_end(doc: JSONDict) -> float:
        if doc["scheduled_at"] is not None:
            return float(doc["scheduled_at"]) + SCHEDULED_WINDOW_S
        return float(doc["created_at"]) + UNSCHEDULED_WINDOW_S

    async def get(self, cid: str) -> Consultation:
        """Internal lookup (no authorization). NotFound when unknown."""
        doc = await self._store.get_doc(KIND, cid) if isinstance(cid, str) and cid else None
        if doc is None:
            raise NotFound("No such consultation.", code="consultation_not_found")
        return self._from_doc(doc)

    async def get_for(self, cid: str, actor: StaffActor, *, admin_allowed: bool = True) -> Consultation:
        """The consultation if `actor` may see it (host, or admin when allowed), else NotFound."""
        consultation = await self.get(cid)
        if consultation.host_id == actor.account_id and actor.role in ("doctor", "admin"):
            return consultation
        if admin_allowed and actor.is_admin:
            return consultation
        raise NotFound("No such consultation.", code="consultation_not_found")

    async def require_host(self, cid: str, actor: StaffActor) -> Consultation:
        return await self.get_for(cid, actor, admin_allowed=False)

    async def list_for(self, actor: StaffActor) -> list[Consultation]:
        if actor.is_admin:
            docs = await self._store.list_docs(KIND)
        else:
            docs = await self._store.find_docs(KIND, "host_id", actor.account_id)
        return sorted((self._from_doc(d) for d in docs), key=lambda c: (c.created_at, c.id))

    # -- writing -----------------------------------------------------------------------------

    async def create(
        self,
        actor: StaffActor,
        *,
        label: object = None,
        scheduled_at: object = None,
        max_participants: object = None,
        e2ee: object = None,
        integration_id: str | None = None,
    ) -> Consultation:
        """`integration_id`: created through that integration's API key (which is then the
        audited actor, and the only integration that sees it or hears its events)."""
        if actor.role != "doctor":
            raise InvalidInput("Only a doctor can host a consultation.", code="not_a_doctor")
        clean_label = _validate_label(label)
        now = self._clock.now()
        when: float | None = None
        if scheduled_at is not None:
            if (
                isinstance(scheduled_at, bool)
                or not isinstance(scheduled_at, int | float)
                or not math.isfinite(scheduled_at)
                or not now - SCHEDULED_WINDOW_S < scheduled_at < now + MAX_SCHEDULE_AHEAD_S
            ):
                raise InvalidInput(
                    "scheduled_at must be a time (seconds since the epoch) within the next year.",
                    code="invalid_scheduled_at",
                )
            when = float(scheduled_at)
        limit = self._settings.max_participants_default if max_participants is None else max_participants
        valid = isinstance(limit, int) and not isinstance(limit, bool)
        if not valid or not MIN_PARTICIPANTS <= limit <= MAX_PARTICIPANTS:  # type: ignore[operator]
            raise InvalidInput(
                f"max_participants must be a whole number from {MIN_PARTICIPANTS} to {MAX_PARTICIPANTS}.",
                code="invalid_max_participants",
            )
        policy = self._settings.e2ee_policy if e2ee is None else e2ee
        if policy not in E2EE_POLICIES:
            raise InvalidInput('e2ee must be "required", "preferred" or "off".', code="invalid_e2ee")
        doc: dict[str, Any] = {
            "id": "c_" + secrets.token_hex(10),
            "e2ee": policy,
            "host_id": actor.account_id,
            "label": clean_label,
            "state": ConsultationState.SCHEDULED.value,
            "scheduled_at": when,
            "created_at": now,
            "max_participants": limit,
            "opened_at": None,
            "ended_at": None,
            "integration_id": integration_id,
        }
        await self._put(doc)
        await self._audit.record(
            "consultation.create", actor=integration_id or actor.account_id, target=doc["id"],
            outcome="ok", consultation_id=doc["id"],
        )
        await self._events.emit(EventType.CONSULTATION_CREATED, consultation_id=doc["id"])
        return self._from_doc(doc)

    async def open(self, cid: str, actor: StaffActor) -> Consultation:
        """The host opens it (first join). Idempotent on an open consultation."""
        consultation = await self.require_host(cid, actor)
        if consultation.state is ConsultationState.OPEN:
            return consultation
        if consultation.state is not ConsultationState.SCHEDULED:
            raise Conflict("This consultation has ended.", code="consultation_closed")
        return await self._move(cid, ConsultationState.OPEN, "opened_at", "consultation.open",
                                EventType.CONSULTATION_STARTED, actor)

    async def end(self, cid: str, actor: StaffActor) -> tuple[Consultation, bool]:
        """Mark ended. Returns (consultation, changed); ending twice is not an error."""
        consultation = await self.get_for(cid, actor, admin_allowed=True)
        if consultation.state is ConsultationState.ENDED:
            return consultation, False
        return await self._move(cid, ConsultationState.ENDED, "ended_at", "consultation.end",
                                EventType.CONSULTATION_ENDED, actor), True

    async def _move(self, cid: str, state: ConsultationState, stamp: str, action: str, event: EventType,
                    actor: StaffActor) -> Consultation:
        """Put the consultation in `state` with the time in `stamp`; audit `action`, emit `event`."""
        doc = await self._raw(cid)
        doc["state"] = state.value
        doc[stamp] = self._clock.now()
        await self._put(doc)
        await self._audit.record(action, actor=actor.account_id, target=cid, outcome="ok",
                                 consultation_id=cid)
        await self._events.emit(event, consultation_id=cid)
        return self._from_doc(doc)

    async def _raw(self, cid: str) -> dict[str, Any]:
        doc = await self._store.get_doc(KIND, cid)
        if doc is None:
            raise NotFound("No such consultation.", code="consultation_not_found")
        return dict(doc)

    async def _put(self, doc: dict[str, Any]) -> None:
        await self._store.put_doc(KIND, doc["id"], doc, index={"host_id": doc["host_id"]})
