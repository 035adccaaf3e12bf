"""The delivery worker: sends what the outbox holds, signed, and reschedules what fails.

It needs something that POSTs (a `Poster`; the server passes one built on aiohttp, in
server/api/integration_services.py) and runs as one named task per process. `run()` delivers
everything due, then waits for the next due time, a wake-up (an event was queued) or
`webhook_poll_s`, whichever comes first (other nodes' and the CLI's events are seen at the
latest after one poll), until `stop()`: the attempt in flight finishes and is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..errors import NotFound
from .models import KeyStatus
from .outbox import Delivery, DeliveryState, Outbox
from .registry import IntegrationRegistry
from .signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_header

log = logging.getLogger("teleconsult.integrations")


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the HTTP status; raise OSError or TimeoutError when none came."""
        ...


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class DeliveryWorker:
    _outbox: Outbox
    _registry: IntegrationRegistry
    _poster: Poster
    _clock: Clock
    _settings: Settings
    _audit: AuditLog
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the attempt in flight (its answer recorded), start no other; run() returns."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                next_at = await self.deliver_due()
            except Exception:
                log.exception("webhook delivery round failed")
                next_at = None
            wait = self._settings.webhook_poll_s
            if next_at is not None:
                wait = max(0.0, min(wait, next_at - self._clock.now()))
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def deliver_due(self) -> float | None:
        """Attempt every due delivery once; return when the next one is due (None: none)."""
        next_at: float | None = None
        for delivery in await self._outbox.pending():
            if self._stopping:
                break
            if delivery.next_at > self._clock.now():
                next_at = delivery.next_at if next_at is None else min(next_at, delivery.next_at)
                continue
            if not await self._outbox.claim(delivery):
                continue  # another node has this attempt
            after = await self.attempt(delivery)
            if after.state is DeliveryState.PENDING:
                next_at = after.next_at if next_at is None else min(next_at, after.next_at)
        return next_at

    async def attempt(self, delivery: Delivery) -> Delivery:
        try:
            integration = await self._registry.get(delivery.integration_id)
        except NotFound:
            return await self._outbox.abandon(delivery)
        hook = integration.webhook
        if integration.status(self._clock.now()) is not KeyStatus.ACTIVE or hook is None:
            after = await self._outbox.abandon(delivery)
            await self._record(delivery, "abandoned")
            return after
        body = delivery.body.encode("utf-8")
        timestamp = int(self._clock.now())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "teleconsult-webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature_header(
                await self._registry.signing_secrets(integration.id), timestamp, body),
            EVENT_ID_HEADER: delivery.id,
            EVENT_TYPE_HEADER: delivery.event.value,
        }
        status: int | None = None
        try:
            status = await self._poster.post(hook.url, body, headers)
        except (OSError, TimeoutError) as exc:
            log.info("webhook %s to integration %s: no answer (%s)", delivery.id, integration.id,
                     type(exc).__name__)
        if status is not None and 200 <= status < 300:
            after = await self._outbox.delivered(delivery, status)
            await self._record(delivery, "ok")
            return after
        after = await self._outbox.attempt_failed(delivery, status)
        gave_up = after.state is DeliveryState.FAILED
        log.info("webhook %s to integration %s: attempt %d failed (status %s), %s", delivery.id,
                 integration.id, after.attempts, status,
                 "giving up" if gave_up else f"next in {after.next_at - self._clock.now():.1f}s")
        await self._record(delivery, "failed" if gave_up else "retry")
        return after

    async def _record(self, delivery: Delivery, outcome: str) -> None:
        await self._audit.record("webhook.deliver", actor=delivery.integration_id,
                                 target={"event": delivery.id}, outcome=outcome)
