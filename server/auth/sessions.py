"""Server-side staff sessions (DESIGN §4).

The cookie carries a 256-bit random token; the store keeps only its SHA-256 (`id_hash`), so a
copy of the database does not yield live sessions. A session is either "mfa" (password checked,
second factor pending; short-lived) or "auth" (fully authenticated). Every login step issues a
new token. Idle and absolute timeouts are checked against the injected clock; the store's own
expiry (real time) only cleans up. Every session this service ends — revoked, or found expired —
is published on `revocations` (revocation.py), so open sockets on it close at once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..clock import Clock
from ..config import Settings
from ..store.base import Store
from .revocation import LocalSessionRevocations, SessionRevocations

KIND = "session"
ACCOUNT_INDEX = "account"
STAGE_MFA = "mfa"
STAGE_AUTH = "auth"
MFA_STAGE_TTL_S = 5 * 60.0
TOUCH_EVERY_S = 15.0  # last_seen is written at most this often
ID_HINT_LENGTH = 12


def hash_token(token: str) -> str:
    return hashlib.sha256(b"teleconsult/session/" + token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Session:
    id_hash: str
    account_id: str
    stage: str
    created_at: float
    last_seen: float
    expires_at: float  # absolute limit
    auth_at: float | None  # last time a factor was proved (login or reauth)
    mfa_failures: int = 0
    device: str = ""  # a short browser/OS label for the sessions list ("Firefox on Linux")
    shared: bool = False  # "this is a shared computer": Settings.shared_computer_idle_s

    @property
    def id_hint(self) -> str:
        return self.id_hash[:ID_HINT_LENGTH]

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Session:
        return cls(
            id_hash=str(doc["id_hash"]), account_id=str(doc["account_id"]), stage=str(doc["stage"]),
            created_at=float(doc["created_at"]), last_seen=float(doc["last_seen"]),
            expires_at=float(doc["expires_at"]),
            auth_at=None if doc.get("auth_at") is None else float(doc["auth_at"]),
            mfa_failures=int(doc.get("mfa_failures", 0)),
            device=str(doc.get("device", "")), shared=bool(doc.get("shared", False)),
        )


class SessionService:
    def __init__(
        self, store: Store, clock: Clock, settings: Settings, revocations: SessionRevocations | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self.revocations: SessionRevocations = revocations or LocalSessionRevocations()

    def _idle_limit(self, stage: str, shared: bool = False) -> float:
        if stage == STAGE_MFA:
            return MFA_STAGE_TTL_S
        return float(self._settings.shared_computer_idle_s if shared else self._settings.session_idle_s)

    def idle_limit(self, session: Session) -> float:
        return self._idle_limit(session.stage, session.shared)

    async def _put(self, session: Session) -> None:
        remaining = max(1.0, session.expires_at - self._clock.now())
        await self._store.put_doc(
            KIND, session.id_hash, session.to_doc(), ttl_s=remaining,
            index={ACCOUNT_INDEX: session.account_id},
        )

    async def create(
        self, account_id: str, stage: str, *, device: str = "", shared: bool = False,
    ) -> tuple[str, Session]:
        """A new session; returns (cookie token, session). The token is never stored."""
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        lifetime = MFA_STAGE_TTL_S if stage == STAGE_MFA else float(self._settings.session_absolute_s)
        session = Session(
            id_hash=hash_token(token), account_id=account_id, stage=stage, created_at=now,
            last_seen=now, expires_at=now + lifetime, auth_at=now if stage == STAGE_AUTH else None,
            device=device[:60], shared=shared,
        )
        await self._put(session)
        return token, session

    def _alive(self, session: Session, now: float) -> bool:
        return now < session.expires_at and now - session.last_seen < self.idle_limit(session)

    async def get_by_hash(self, id_hash: str, *, touch: bool = True) -> Session | None:
        doc = await self._store.get_doc(KIND, id_hash)
        if doc is None:
            return None
        session = Session.from_doc(doc)
        now = self._clock.now()
        if not self._alive(session, now):
            await self._forget_lapsed((id_hash,))
            return None
        # A short idle limit is touched proportionally more often, or it would lapse while in use.
        if touch and now - session.last_seen >= min(TOUCH_EVERY_S, self.idle_limit(session) / 4):
            session = replace(session, last_seen=now)
            await self._put(session)
        return session

    async def live_among(self, id_hashes: Iterable[str]) -> dict[str, Session]:
        """The live sessions among `id_hashes`, by hash, read in one store round trip; not
        touched (a re-check is not activity). Expired ones are deleted and their revocation
        published, as `get_by_hash` does."""
        docs = await self._store.get_docs(KIND, list(id_hashes))
        now, live, lapsed = self._clock.now(), {}, []
        for id_hash, doc in docs.items():
            session = Session.from_doc(doc)
            if self._alive(session, now):
                live[id_hash] = session
            else:
                lapsed.append(id_hash)
        if lapsed:
            await self._forget_lapsed(lapsed)
        return live

    async def _forget_lapsed(self, id_hashes: Sequence[str]) -> None:
        """Sessions found lapsed (idle or absolute limit): deleted, and their revocation
        published so every node closes their sockets."""
        for id_hash in id_hashes:
            await self._store.delete_doc(KIND, id_hash)
        await self.revocations.publish(tuple(id_hashes))

    async def get(self, token: str, *, touch: bool = True) -> Session | None:
        if not isinstance(token, str) or not 20 <= len(token) <= 128:
            return None
        return await self.get_by_hash(hash_token(token), touch=touch)

    async def save(self, session: Session) -> None:
        await self._put(session)

    async def revoke(self, id_hash: str) -> bool:
        deleted = await self._store.delete_doc(KIND, id_hash)
        await self.revocations.publish((id_hash,))  # also when already gone: holders close
        return deleted

    async def for_account(self, account_id: str) -> list[Session]:
        now = self._clock.now()
        sessions = [Session.from_doc(d) for d in await self._store.find_docs(KIND, ACCOUNT_INDEX, account_id)]
        return sorted((s for s in sessions if self._alive(s, now)), key=lambda s: s.created_at)

    async def revoke_all(self, account_id: str, *, except_hash: str | None = None) -> int:
        ended: list[str] = []
        for doc in await self._store.find_docs(KIND, ACCOUNT_INDEX, account_id):
            id_hash = str(doc["id_hash"])
            if id_hash != except_hash and await self._store.delete_doc(KIND, id_hash):
                ended.append(id_hash)
        await self.revocations.publish(ended)
        return len(ended)

    async def mark_authenticated(self, id_hash: str) -> None:
        session = await self.get_by_hash(id_hash, touch=False)
        if session is not None:
            await self._put(replace(session, auth_at=self._clock.now(), last_seen=self._clock.now()))

    async def recently_authenticated(self, id_hash: str) -> bool:
        session = await self.get_by_hash(id_hash, touch=False)
        if session is None or session.auth_at is None:
            return False
        return self._clock.now() - session.auth_at <= self._settings.reauth_window_s
