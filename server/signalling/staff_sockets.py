"""Open host WebSockets by the staff session behind them, so that ending the session closes them.

`StaffSocketRegistry` maps a staff session reference (its id hash) to the connections opened on
it. It closes them (CLOSE_SESSION_ENDED) when:
- the session service publishes the session's revocation (logout, sign-out, password change,
  account disabled, MFA reset, a noticed expiry) — at once, in this process;
- its periodic re-check (every `recheck_s`, all sessions in one batch) finds the session no
  longer valid — a revocation made by another process (the admin CLI) or an idle/absolute
  expiry nobody noticed yet;
- `still_valid` finds it invalid before a staff action is handled (ws.py calls it per message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..auth.revocation import SessionRevocations
from ..errors import DomainError
from ..tasks import cancel_and_wait
from .keyed_sets import KeyedSets

log = logging.getLogger("teleconsult.ws")

CLOSE_SESSION_ENDED = 4401  # the staff session behind the socket ended (docs/api.md)
SessionCheck = Callable[[str], Awaitable[bool]]
SessionsCheck = Callable[[list[str]], Awaitable[set[str]]]  # the refs still valid among these


class ClosableConnection(Protocol):
    async def close(self, code: int, reason: str) -> None: ...


class StaffSocketRegistry:
    def __init__(self, check: SessionCheck, check_many: SessionsCheck, revocations: SessionRevocations,
                 recheck_s: float) -> None:
        self._check = check
        self._check_many = check_many
        self._revocations = revocations
        self._recheck_s = recheck_s
        self._sockets: KeyedSets[ClosableConnection] = KeyedSets()
        self._closing: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._loop_task is None:
            self._unsubscribe = self._revocations.subscribe(self._revoked)
            self._loop_task = asyncio.create_task(self._recheck_loop(), name="staff-session-recheck")

    async def close(self) -> None:
        """Idempotent: stop the re-check, forget the subscription, await pending closes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._loop_task = self._loop_task, None
        await cancel_and_wait(task)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- registry ----------------------------------------------------------------------------

    def add(self, session_ref: str, conn: ClosableConnection) -> None:
        self._sockets.add(session_ref, conn)

    def discard(self, session_ref: str, conn: ClosableConnection) -> None:
        self._sockets.discard(session_ref, conn)

    def count(self) -> int:
        return self._sockets.count()

    async def still_valid(self, session_ref: str) -> bool:
        """Re-validate now; an invalid session's sockets are closed."""
        if await self._check(session_ref):
            return True
        self._close_all(session_ref)
        return False

    # -- closing -----------------------------------------------------------------------------

    async def _revoked(self, id_hashes: frozenset[str]) -> None:
        for ref in id_hashes & set(self._sockets.key_list()):
            self._close_all(ref)

    def _close_all(self, session_ref: str) -> None:
        conns = self._sockets.pop(session_ref)
        if conns:
            log.info("staff session ended: closing %d socket(s)", len(conns))
        for conn in conns:
            # A task each: the revoking request (a logout) does not wait for close handshakes.
            task = asyncio.create_task(conn.close(CLOSE_SESSION_ENDED, "session ended"),
                                       name="staff-socket-close")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self._recheck_s)
            refs = self._sockets.key_list()
            if not refs:
                continue
            try:  # every session in one go: a store round trip costs ~0.2 ms of CPU here
                valid = await self._check_many(refs)
            except DomainError:  # the store hiccuped: keep the sockets, try again next round
                log.warning("staff session re-check failed; retrying")
                continue
            for ref in refs:
                if ref not in valid:
                    self._close_all(ref)
