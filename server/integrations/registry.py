"""The integrations registry: API keys (created by an administrator, shown once, stored as
their sha256, scoped, optionally expiring, revocable at once, rate-limited per key) and each
integration's webhook (URL, events, signing secrets sealed at rest, rotation with overlap).

Every authenticated call and every refusal is audited with the key's id (the integration id);
the audit never sees the key, the secret, the name or the URL.
"""

from __future__ import annotations

import math
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from ..audit import AuditLog
from ..auth.secretbox import SecretBox
from ..clock import Clock
from ..config import Settings
from ..consultations.models import token_hash
from ..errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from ..store.base import JSONDict, Store
from .events import EventType
from .models import (
    KEY_PREFIX,
    SECRET_PREFIX,
    Integration,
    IssuedKey,
    IssuedSecret,
    KeyStatus,
    Scope,
    Webhook,
)
from .signing import check_webhook_url

KIND = "integration"
HASH_INDEX = "token_hash"
RATE_WINDOW_S = 60
NAME_MAX = 64
RATE_MAX = 100_000
UNKNOWN_AUDITS_PER_MIN = 20
BAD_KEY = "Unknown, revoked or expired API key."


def parse_scopes(raw: Iterable[object]) -> frozenset[Scope]:
    allowed = {s.value for s in Scope}
    scopes = set()
    for item in raw:
        if not isinstance(item, str) or item not in allowed:
            raise InvalidInput(
                f"Scopes are {', '.join(sorted(allowed))}.", code="invalid_scope"
            )
        scopes.add(Scope(item))
    if not scopes:
        raise InvalidInput("Give at least one scope.", code="invalid_scope")
    return frozenset(scopes)


def parse_events(raw: Iterable[object]) -> frozenset[EventType]:
    allowed = {e.value for e in EventType}
    events = set()
    for item in raw:
        if not isinstance(item, str) or item not in allowed:
            raise InvalidInput(f"Events are {', '.join(sorted(allowed))}.", code="invalid_event")
        events.add(EventType(item))
    if not events:
        raise InvalidInput("Pick at least one event.", code="invalid_event")
    return frozenset(events)


def _check_name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("Give the integration a name.", code="invalid_name")
    name = raw.strip()
    if len(name) > NAME_MAX or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInput(f"The name must be at most {NAME_MAX} printable characters.",
                           code="invalid_name")
    return name


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class IntegrationRegistry:
    def __init__(self, store: Store, clock: Clock, settings: Settings, audit: AuditLog,
                 box: SecretBox) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._audit = audit
        self._box = box

    # -- administration (CLI) -------------------------------------------------------------

    async def create(self, *, name: object, scopes: Iterable[object], expires_in_s: float | None = None,
                     rate_limit_per_min: int | None = None, actor: str) -> IssuedKey:
        clean_name = _check_name(name)
        clean_scopes = parse_scopes(scopes)
        now = self._clock.now()
        if expires_in_s is not None and (not math.isfinite(expires_in_s) or expires_in_s <= 0):
            raise InvalidInput("The expiry must be a positive duration.", code="invalid_expiry")
        limit = rate_limit_per_min
        if limit is None:
            limit = self._settings.integration_rate_limit_per_min
        if not 1 <= limit <= RATE_MAX:
            raise InvalidInput(f"The rate limit must be 1 to {RATE_MAX} calls a minute.",
                               code="invalid_rate_limit")
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        doc: dict[str, Any] = {
            "id": "ik_" + secrets.token_hex(10),
            "name": clean_name,
            "scopes": sorted(s.value for s in clean_scopes),
            "token_hash": token_hash(api_key),
            "created_at": now,
            "expires_at": None if expires_in_s is None else now + expires_in_s,
            "revoked_at": None,
            "rate_limit_per_min": limit,
            "webhook": None,
            "webhook_secrets": [],
        }
        await self._put(doc)
        await self._audit.record("integration.create", actor=actor, target=doc["id"])
        return IssuedKey(integration=self._from_doc(doc), api_key=api_key)

    async def list_all(self) -> list[Integration]:
        found = [self._from_doc(d) for d in await self._store.list_docs(KIND)]
        return sorted(found, key=lambda i: (i.created_at, i.id))

    async def get(self, integration_id: str) -> Integration:
        return self._from_doc(await self._raw(integration_id))

    async def revoke(self, integration_id: str, *, actor: str) -> Integration:
        """At once: the next call with this key gets 401, and no webhook is sent any more."""
        doc = await self._raw(integration_id)
        if doc["revoked_at"] is None:
            doc["revoked_at"] = self._clock.now()
            await self._put(doc)
        await self._audit.record("integration.revoke", actor=actor, target=integration_id)
        return self._from_doc(doc)

    async def set_webhook(self, integration_id: str, *, url: object, events: Iterable[object],
                          actor: str) -> IssuedSecret | None:
        """Register (or change) the endpoint and its events. The first registration makes a
        signing secret, returned once; later changes keep the secret (None)."""
        doc = await self._raw(integration_id)
        clean_url = check_webhook_url(url, allow_loopback_http=self._settings.webhook_allow_http_loopback)
        clean_events = parse_events(events)
        doc["webhook"] = {"url": clean_url, "events": sorted(e.value for e in clean_events)}
        issued = None
        if not doc["webhook_secrets"]:
            secret = SECRET_PREFIX + secrets.token_urlsafe(32)
            doc["webhook_secrets"] = [self._sealed_entry(integration_id, secret)]
            issued = IssuedSecret(integration_id, secret, None)
        await self._put(doc)
        await self._audit.record("integration.webhook_set", actor=actor, target=integration_id)
        return issued

    async def rotate_secret(self, integration_id: str, *, overlap_s: float | None = None,
                            actor: str) -> IssuedSecret:
        """A new signing secret (returned once). The previous one keeps signing too for
        `overlap_s` (default Settings.webhook_secret_overlap_s), then stops."""
        doc = await self._raw(integration_id)
        if doc["webhook"] is None:
            raise InvalidInput("Register a webhook first.", code="no_webhook")
        overlap = float(self._settings.webhook_secret_overlap_s if overlap_s is None else overlap_s)
        if not math.isfinite(overlap) or overlap < 0:
            raise InvalidInput("The overlap must be zero or more seconds.", code="invalid_overlap")
        now = self._clock.now()
        until = now + overlap
        kept = []
        for entry in self._live_secret_entries(doc, now):
            ends = entry["not_after"]
            kept.append({**entry, "not_after": until if ends is None else min(float(ends), until)})
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        doc["webhook_secrets"] = [self._sealed_entry(integration_id, secret),
                                  *[e for e in kept if float(e["not_after"]) > now]]
        await self._put(doc)
        await self._audit.record("integration.secret_rotate", actor=actor, target=integration_id)
        return IssuedSecret(integration_id, secret, until if kept and overlap > 0 else None)

    async def signing_secrets(self, integration_id: str) -> list[str]:
        """The secrets that sign a delivery now: the current one first, then any still in
        their overlap window."""
        doc = await self._raw(integration_id)
        return [self._box.open(e["sealed"], owner=integration_id)
                for e in self._live_secret_entries(doc, self._clock.now())]

    # -- requests (REST) ------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Integration:
        """The active integration behind `Authorization: Bearer <key>`; Unauthenticated (401)
        for a missing, unknown, revoked or expired key (same answer for each)."""
        token = bearer_token(authorization)
        docs = await self._store.find_docs(KIND, HASH_INDEX, token_hash(token or ""))
        integration = self._from_doc(docs[0]) if token is not None and docs else None
        if integration is None:
            # Audited, but at most UNKNOWN_AUDITS_PER_MIN a minute: a flood of made-up keys must
            # not flood the audit log (a 256-bit key cannot be guessed anyway).
            window = int(self._clock.now() // RATE_WINDOW_S)
            seen = await self._store.incr(f"integration-unknown:{window}", RATE_WINDOW_S * 2)
            if seen <= UNKNOWN_AUDITS_PER_MIN:
                await self._audit.record("integration.auth", actor=None, outcome="unknown_key")
            raise Unauthenticated(BAD_KEY, code="invalid_api_key")
        status = integration.status(self._clock.now())
        if status is not KeyStatus.ACTIVE:
            await self._audit.record("integration.auth", actor=integration.id, outcome=status.value)
            raise Unauthenticated(BAD_KEY, code="invalid_api_key")
        return integration

    async def check_rate(self, integration: Integration) -> None:
        """At most rate_limit_per_min calls in each minute; RateLimited (429) past it. Only the
        first refusal of a window is audited (a flood does not flood the log)."""
        now = self._clock.now()
        window = int(now // RATE_WINDOW_S)
        count = await self._store.incr(f"integration-rate:{integration.id}:{window}", RATE_WINDOW_S * 2)
        if count > integration.rate_limit_per_min:
            if count == integration.rate_limit_per_min + 1:
                await self._audit.record("integration.call", actor=integration.id, outcome="rate_limited")
            raise RateLimited("Too many calls with this API key; slow down.",
                              retry_after_s=(window + 1) * RATE_WINDOW_S - now)

    async def require_scope(self, integration: Integration, scope: Scope) -> None:
        if scope not in integration.scopes:
            await self._audit.record("integration.call", actor=integration.id, outcome="scope_missing",
                                     target={"scope": scope.value})
            raise Forbidden("This API key does not have the scope for this.", code="scope_missing")

    # -- documents ------------------------------------------------------------------------

    def _sealed_entry(self, integration_id: str, secret: str) -> dict[str, Any]:
        return {"sealed": self._box.seal(secret, owner=integration_id),
                "created_at": self._clock.now(), "not_after": None}

    @staticmethod
    def _live_secret_entries(doc: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
        return [dict(e) for e in doc.get("webhook_secrets") or ()
                if e.get("not_after") is None or float(e["not_after"]) > now]

    async def _raw(self, integration_id: str) -> dict[str, Any]:
        doc = await self._store.get_doc(KIND, integration_id) if integration_id else None
        if doc is None:
            raise NotFound("No such integration.", code="integration_not_found")
        return dict(doc)

    async def _put(self, doc: dict[str, Any]) -> None:
        await self._store.put_doc(KIND, doc["id"], doc, index={HASH_INDEX: doc["token_hash"]})

    @staticmethod
    def _from_doc(doc: JSONDict) -> Integration:
        hook = doc.get("webhook")
        return Integration(
            id=doc["id"], name=doc["name"],
            scopes=frozenset(Scope(s) for s in doc["scopes"]),
            created_at=float(doc["created_at"]),
            expires_at=None if doc.get("expires_at") is None else float(doc["expires_at"]),
            revoked_at=None if doc.get("revoked_at") is None else float(doc["revoked_at"]),
            rate_limit_per_min=int(doc["rate_limit_per_min"]),
            webhook=None if hook is None else Webhook(
                url=str(hook["url"]), events=frozenset(EventType(e) for e in hook["events"])),
        )
