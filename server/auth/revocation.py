"""Session revocation notices: how the parts holding a staff session open (host WebSockets)
learn at once that it ended.

`SessionService` publishes the id hashes of every session it ends (logout, "sign out" of a
session or everywhere, password change, account disabled, MFA reset, and an idle or absolute
expiry it notices). Subscribers are called in this process. `LocalSessionRevocations` is the
single-process implementation; several nodes would put Redis pub/sub behind the same two
methods. A revocation made by another process (the admin CLI on the same store) never reaches
this bus: holders also re-check their sessions periodically (Settings.staff_session_recheck_s).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

log = logging.getLogger("teleconsult.auth")

RevocationListener = Callable[[frozenset[str]], Awaitable[None]]


class SessionRevocations(Protocol):
    def subscribe(self, listener: RevocationListener) -> Callable[[], None]:
        """Call `listener` with the id hashes of every batch of ended sessions; returns the
        unsubscribe function."""
        ...

    async def publish(self, id_hashes: Iterable[str]) -> None:
        """Tell every subscriber; never raises (a failing listener is logged and skipped)."""
        ...


class LocalSessionRevocations:
    """In-process fan-out to the listeners of this process."""

    def __init__(self) -> None:
        self._listeners: list[RevocationListener] = []

    def subscribe(self, listener: RevocationListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def publish(self, id_hashes: Iterable[str]) -> None:
        batch = frozenset(id_hashes)
        if not batch:
            return
        for listener in list(self._listeners):
            try:
                await listener(batch)
            except Exception:
                log.exception("a session revocation listener failed")
