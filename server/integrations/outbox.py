"""The webhook outbox, in the store (so a restart loses nothing), and the event sink that
fills it.

An event about a consultation an integration created, of a type its webhook picked, becomes
one delivery document: the exact body to send (ids only), the attempt count and the time of
the next attempt. The delivery worker (delivery.py) takes what is due; a failed attempt is
retried after base·2^(n−1) seconds (capped), and after `webhook_max_attempts` the delivery is
marked failed. Across several nodes an attempt is claimed once (store.claim).
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..consultations.service import KIND as CONSULTATION_KIND
from ..store.base import JSONDict, Store
from .events import EventType
from .models import KeyStatus
from .registry import IntegrationRegistry

log = logging.getLogger("teleconsult.integrations")

DELIVERY_KIND = "webhook_delivery"
STATE_INDEX = "state"
DONE_TTL_S = 7 * 24 * 3600  # delivered/failed documents are kept a week, for the operator


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    id: str  # the event id ("evt_" + 24 hex): receivers de-duplicate on it
    integration_id: str
    event: EventType
    body: str  # the exact JSON text signed and sent, the same on every attempt
    state: DeliveryState
    attempts: int
    next_at: float
    created_at: float
    last_status: int | None

    @classmethod
    def from_doc(cls, doc: JSONDict) -> Delivery:
        return cls(
            id=doc["id"], integration_id=doc["integration_id"], event=EventType(doc["event"]),
            body=doc["body"], state=DeliveryState(doc["state"]), attempts=int(doc["attempts"]),
            next_at=float(doc["next_at"]), created_at=float(doc["created_at"]),
            last_status=doc.get("last_status"),
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id, "integration_id": self.integration_id, "event": self.event.value,
            "body": self.body, "state": self.state.value, "attempts": self.attempts,
            "next_at": self.next_at, "created_at": self.created_at, "last_status": self.last_status,
        }


def event_body(event_id: str, event: EventType, integration_id: str, created_at: float,
               data: dict[str, str]) -> str:
    """The payload: ids, the event type and a time — never a name, an e-mail or a label."""
    return json.dumps({"id": event_id, "type": event.value, "created_at": created_at,
                       "integration_id": integration_id, "data": data},
                      sort_keys=True, separators=(",", ":"))


class Outbox:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    async def enqueue(self, integration_id: str, event: EventType, data: dict[str, str]) -> Delivery:
        now = self._clock.now()
        event_id = "evt_" + secrets.token_hex(12)
        delivery = Delivery(
            id=event_id, integration_id=integration_id, event=event,
            body=event_body(event_id, event, integration_id, now, data),
            state=DeliveryState.PENDING, attempts=0, next_at=now, created_at=now, last_status=None,
        )
        await self._save(delivery)
        return delivery

    async def pending(self) -> list[Delivery]:
        docs = await self._store.find_docs(DELIVERY_KIND, STATE_INDEX, DeliveryState.PENDING.value)
        return sorted((Delivery.from_doc(d) for d in docs), key=lambda d: (d.next_at, d.id))

    async def get(self, delivery_id: str) -> Delivery | None:
        doc = await self._store.get_doc(DELIVERY_KIND, delivery_id)
        return None if doc is None else Delivery.from_doc(doc)

    async def claim(self, delivery: Delivery) -> bool:
        """One node per attempt (the claim outlives the attempt's timeout)."""
        ttl = self._settings.webhook_timeout_s + 30
        return await self._store.claim("webhook_attempt", f"{delivery.id}:{delivery.attempts}", ttl)

    async def delivered(self, delivery: Delivery, status: int) -> Delivery:
        done = replace(delivery, state=DeliveryState.DELIVERED, attempts=delivery.attempts + 1,
                        last_status=status)
        await self._save(done)
        return done

    async def attempt_failed(self, delivery: Delivery, status: int | None) -> Delivery:
        """Schedule the next attempt with backoff, or give up after the last one."""
        attempts = delivery.attempts + 1
        if attempts >= self._settings.webhook_max_attempts:
            after = replace(delivery, state=DeliveryState.FAILED, attempts=attempts, last_status=status)
        else:
            after = replace(delivery, attempts=attempts, last_status=status,
                             next_at=self._clock.now() + self.backoff_s(attempts))
        await self._save(after)
        return after

    async def abandon(self, delivery: Delivery) -> Delivery:
        """The integration was revoked or its webhook removed: nothing more is sent."""
        after = replace(delivery, state=DeliveryState.FAILED)
        await self._save(after)
        return after

    def backoff_s(self, attempts: int) -> float:
        base = self._settings.webhook_backoff_base_s
        return float(min(self._settings.webhook_backoff_max_s, base * 2 ** (attempts - 1)))

    async def _save(self, delivery: Delivery) -> None:
        if delivery.state is DeliveryState.PENDING:
            await self._store.put_doc(DELIVERY_KIND, delivery.id, delivery.to_doc(),
                                      index={STATE_INDEX: delivery.state.value})
        else:
            await self._store.put_doc(DELIVERY_KIND, delivery.id, delivery.to_doc(),
                                      ttl_s=DONE_TTL_S, index={STATE_INDEX: delivery.state.value})


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class OutboxEventSink:
    """The event sink of a running server (and of the CLI): an event about a consultation an
    integration created goes to that integration's outbox, if its webhook picked the event."""

    _store: Store
    _clock: Clock
    _audit: AuditLog
    _registry: IntegrationRegistry
    _outbox: Outbox
    _wake: Callable[[], None] | None = None

    async def emit(self, event: EventType, *, consultation_id: str,
                   recording_id: str | None = None) -> None:
        try:
            await self._emit(event, consultation_id, recording_id)
        except Exception:
            log.exception("queuing event %s of consultation %s failed", event.value, consultation_id)

    async def _emit(self, event: EventType, cid: str, recording_id: str | None) -> None:
        consultation = await self._store.get_doc(CONSULTATION_KIND, cid)
        integration_id = consultation.get("integration_id") if consultation is not None else None
        if not isinstance(integration_id, str):
            return  # not created by an integration: nobody to tell
        integration = await self._registry.get(integration_id)
        hook = integration.webhook
        if (integration.status(self._clock.now()) is not KeyStatus.ACTIVE or hook is None
                or event not in hook.events):
            return
        data = {"consultation_id": cid}
        if recording_id is not None:
            data["recording_id"] = recording_id
        delivery = await self._outbox.enqueue(integration_id, event, data)
        await self._audit.record("webhook.enqueue", actor=integration_id,
                                 target={"event": delivery.id}, consultation_id=cid)
        if self._wake is not None:
            self._wake()
