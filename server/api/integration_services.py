"""The integrations feature's services, as one value the composition root builds (services.py:
its cleanup context runs after the store's and before the consultation and recording services',
which get `events` when they are built)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from ..audit import AuditLog
from ..auth.secretbox import SecretBox
from ..clock import Clock
from ..config import Settings
from ..integrations.delivery import DeliveryWorker
from ..integrations.outbox import Outbox, OutboxEventSink
from ..integrations.registry import IntegrationRegistry
from ..store.base import Store


@dataclass(frozen=True)
class IntegrationServices:
    registry: IntegrationRegistry
    outbox: Outbox
    events: OutboxEventSink
    worker: DeliveryWorker

    @classmethod
    def build(cls, store: Store, clock: Clock, settings: Settings, audit: AuditLog,
              http: aiohttp.ClientSession) -> IntegrationServices:
        registry = IntegrationRegistry(store, clock, settings, audit,
                                       SecretBox.load_or_create(settings.data_dir))
        outbox = Outbox(store, clock, settings)
        worker = DeliveryWorker(outbox, registry, AiohttpPoster(http, settings.webhook_timeout_s),
                                clock, settings, audit)
        events = OutboxEventSink(store, clock, audit, registry, outbox, worker.wake)
        return cls(registry=registry, outbox=outbox, events=events, worker=worker)


class AiohttpPoster:
    """POST for the delivery worker: no redirects followed, no cookies, no proxy from the
    environment (the session's settings), a total timeout; the answer's body is not read."""

    def __init__(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False,
                                          timeout=self._timeout) as response:
                return response.status
        except aiohttp.ClientError as exc:
            raise OSError(type(exc).__name__) from None


def webhook_http_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
