"""Room tokens: how a doctor's WebSocket proves who it is without a token in the URL.

Single use, short-lived (Settings.room_token_ttl_s), stored only as sha256, bound to the
consultation and to the staff session that asked for it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ..clock import Clock
from ..config import Settings
from ..errors import Unauthenticated
from ..store.base import Store
from .models import Consultation, StaffActor, token_hash

TOKEN_KIND = "room-token"  # noqa: S105 (a store kind)


@dataclass(frozen=True)
class IssuedRoomToken:
    room_token: str
    expires_at: float


class RoomTokenService:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    async def issue(self, consultation: Consultation, actor: StaffActor) -> IssuedRoomToken:
        token = secrets.token_urlsafe(32)
        ttl = self._settings.room_token_ttl_s
        expires_at = self._clock.now() + ttl
        await self._store.put_token(
            TOKEN_KIND,
            token_hash(token),
            {
                "consultation_id": consultation.id,
                "account_id": actor.account_id,
                "role": actor.role,
                "session_ref": actor.session_ref,
                "expires_at": expires_at,
            },
            ttl,
        )
        return IssuedRoomToken(room_token=token, expires_at=expires_at)

    async def redeem(self, token: object, consultation_id: str, *, session_ref: str | None) -> StaffActor:
        """Consume the token; the staff actor it was issued to. `session_ref`: the staff session
        presenting it, which must be the one the token was minted for (None — no staff session,
        e.g. a socket without the cookie — is refused: a token alone proves nothing)."""
        text = token if isinstance(token, str) else ""
        payload = await self._store.consume_token(TOKEN_KIND, token_hash(text))
        refused = Unauthenticated("The room token is invalid or expired.", code="invalid_room_token")
        if payload is None or payload.get("consultation_id") != consultation_id:
            raise refused
        if float(payload.get("expires_at", 0)) <= self._clock.now():
            raise refused
        if not session_ref or payload.get("session_ref") != session_ref:
            raise refused
        return StaffActor(
            account_id=str(payload["account_id"]), role=str(payload["role"]),
            session_ref=str(payload.get("session_ref", "")),
        )
