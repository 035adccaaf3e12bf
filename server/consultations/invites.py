"""One-time invite links (DESIGN D5): 256-bit tokens, stored only as sha256, bound to one
consultation and role, expiring, consumed once (atomically), revocable.

Redeeming refuses every bad token with the same answer and the same work: the token is always
hashed and the same two store lookups are made (the live token, the short-lived "used" marker),
with no early return on malformed input, so expired, revoked, malformed and other-consultation
tokens cannot be told apart, by answer or by timing. Only a token that was really used gets the
kinder "already used" answer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..clock import Clock
from ..config import Settings
from ..errors import Gone, InvalidInput, NotFound
from ..store.base import JSONDict, Store
from .models import (
    AuditSink,
    Consultation,
    Invite,
    InviteRole,
    InviteState,
    IssuedInvite,
    StaffActor,
    token_hash,
)

DOC_KIND = "invite"
TOKEN_KIND = "invite"  # noqa: S105 (a store kind, not a secret)
USED_KIND = "invite-used"

INVITE_USED_MESSAGE = "This link was already used — ask your clinic for a new one."
INVITE_INVALID_MESSAGE = "This link is invalid or expired."


def invite_used() -> Gone:
    return Gone(INVITE_USED_MESSAGE, code="invite_used")


def invite_invalid() -> Gone:
    return Gone(INVITE_INVALID_MESSAGE, code="invite_invalid")


@dataclass(frozen=True)
class InviteGrant:
    """A token that passed the checks (not yet consumed)."""

    key: str  # the token hash
    invite_id: str
    consultation_id: str
    role: InviteRole
    expires_at: float


class InviteService:
    def __init__(self, store: Store, clock: Clock, settings: Settings, audit: AuditSink) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._audit = audit

    async def issue(self, consultation: Consultation, role: object, actor: StaffActor) -> IssuedInvite:
        if not isinstance(role, str) or role not in {r.value for r in InviteRole}:
            raise InvalidInput('role must be "patient" or "guest".', code="invalid_role")
        if not consultation.is_live:
            raise Gone("This consultation has ended.", code="consultation_closed")
        token = secrets.token_urlsafe(32)
        key = token_hash(token)
        ttl = self._settings.invite_ttl_s
        invite = Invite(
            invite_id="i_" + secrets.token_hex(8),
            consultation_id=consultation.id,
            role=InviteRole(role),
            expires_at=self._clock.now() + ttl,
            state=InviteState.OUTSTANDING,
        )
        payload = {
            "invite_id": invite.invite_id,
            "consultation_id": invite.consultation_id,
            "role": invite.role.value,
            "expires_at": invite.expires_at,
        }
        await self._store.put_token(TOKEN_KIND, key, payload, ttl)
        await self._put_doc(invite, key)
        await self._audit.record(
            "invite.create", actor=actor.account_id, target=invite.invite_id, outcome="ok",
            consultation_id=consultation.id,
        )
        return IssuedInvite(invite=invite, token=token, link=f"{self._settings.base_url}/join#{token}")

    async def list_for(self, consultation_id: str) -> list[Invite]:
        docs = await self._store.find_docs(DOC_KIND, "consultation_id", consultation_id)
        invites = [self._from_doc(d) for d in docs]
        return sorted(invites, key=lambda i: (i.expires_at, i.invite_id))

    async def revoke(self, consultation_id: str, invite_id: str, actor: StaffActor) -> None:
        doc = await self._store.get_doc(DOC_KIND, invite_id) if invite_id else None
        if doc is None or doc["consultation_id"] != consultation_id:
            raise NotFound("No such invite.", code="invite_not_found")
        await self._store.delete_token(TOKEN_KIND, doc["token_hash"])
        if doc["state"] == InviteState.OUTSTANDING.value:
            await self._set_state(doc, InviteState.REVOKED)
        await self._audit.record(
            "invite.revoke", actor=actor.account_id, target=invite_id, outcome="ok",
            consultation_id=consultation_id,
        )

    async def revoke_all(self, consultation_id: str) -> int:
        """Ending a consultation: every outstanding invite stops working."""
        count = 0
        for doc in await self._store.find_docs(DOC_KIND, "consultation_id", consultation_id):
            await self._store.delete_token(TOKEN_KIND, doc["token_hash"])
            if doc["state"] == InviteState.OUTSTANDING.value:
                await self._set_state(doc, InviteState.REVOKED)
                count += 1
        return count

    async def check(self, token: object, *, consultation_id: str | None = None) -> InviteGrant:
        """Validate a presented token without consuming it. Raises Gone (invite_used or
        invite_invalid). Same work for every refusal (see the module docstring)."""
        text = token if isinstance(token, str) else ""
        key = token_hash(text)
        payload = await self._store.peek_token(TOKEN_KIND, key)
        used = await self._store.peek_token(USED_KIND, key)
        grant = self._grant(key, payload, consultation_id)
        if grant is None:
            outcome = "invite_used" if used is not None and payload is None else "invite_invalid"
            await self._audit.record(
                "invite.redeem", actor=None,
                target=used.get("invite_id") if used is not None else None,
                outcome=outcome,
                consultation_id=used.get("consultation_id") if used is not None else None,
            )
            metrics.JOIN_FAILURES.labels(stage="invite", reason=outcome).inc()
            raise invite_used() if outcome == "invite_used" else invite_invalid()
        return grant

    async def peek(self, token: object) -> tuple[InviteGrant | None, JSONDict | None]:
        """Read-only look at a presented token, for the link check before the device check:
        the grant when it would be accepted, else the "used" marker when it was redeemed
        recently. No audit, no consumption; the same two lookups for every input."""
        text = token if isinstance(token, str) else ""
        key = token_hash(text)
        payload = await self._store.peek_token(TOKEN_KIND, key)
        used = await self._store.peek_token(USED_KIND, key)
        return self._grant(key, payload, None), (used if payload is None else None)

    async def consume(self, grant: InviteGrant) -> None:
        """Atomically take the token: of many concurrent callers exactly one returns.

        The "used" marker is written before the token is taken, so a concurrent `check` that
        finds the token gone (it reads the token, then the marker) always finds the marker and
        answers invite_used, never invite_invalid."""
        marker_ttl = max(1.0, min(float(self._settings.invite_ttl_s), grant.expires_at - self._clock.now()))
        await self._store.put_token(
            USED_KIND, grant.key,
            {"invite_id": grant.invite_id, "consultation_id": grant.consultation_id}, marker_ttl,
        )
        payload = await self._store.consume_token(TOKEN_KIND, grant.key)
        if payload is None:
            await self._audit.record(
                "invite.redeem", actor=None, target=grant.invite_id, outcome="invite_used",
                consultation_id=grant.consultation_id,
            )
            raise invite_used()
        doc = await self._store.get_doc(DOC_KIND, grant.invite_id)
        if doc is not None:
            await self._set_state(doc, InviteState.USED)

    def _grant(self, key: str, payload: JSONDict | None, consultation_id: str | None) -> InviteGrant | None:
        if payload is None:
            return None
        try:
            grant = InviteGrant(
                key=key,
                invite_id=str(payload["invite_id"]),
                consultation_id=str(payload["consultation_id"]),
                role=InviteRole(payload["role"]),
                expires_at=float(payload["expires_at"]),
            )
        except (KeyError, ValueError, TypeError):
            return None
        if grant.expires_at <= self._clock.now():
            return None
        if consultation_id is not None and consultation_id != grant.consultation_id:
            return None
        return grant

    def _from_doc(self, doc: JSONDict) -> Invite:
        state = InviteState(doc["state"])
        if state is InviteState.OUTSTANDING and float(doc["expires_at"]) <= self._clock.now():
            state = InviteState.EXPIRED
        return Invite(
            invite_id=doc["invite_id"],
            consultation_id=doc["consultation_id"],
            role=InviteRole(doc["role"]),
            expires_at=float(doc["expires_at"]),
            state=state,
        )

    async def _put_doc(self, invite: Invite, key: str) -> None:
        doc: dict[str, Any] = {
            **invite.public(), "consultation_id": invite.consultation_id, "token_hash": key
        }
        await self._store.put_doc(
            DOC_KIND, invite.invite_id, doc, index={"consultation_id": invite.consultation_id}
        )

    async def _set_state(self, doc: JSONDict, state: InviteState) -> None:
        updated = {**doc, "state": state.value}
        await self._store.put_doc(
            DOC_KIND, updated["invite_id"], updated, index={"consultation_id": updated["consultation_id"]}
        )
