"""Caps on WebSockets that have not authenticated yet (upgraded, no hello handled): per client
address (Settings.ws_unauthenticated_per_address) and in total (ws_unauthenticated_total). Over a
cap the upgrade is refused 429 before any socket is accepted; a slot frees once the hello has
been handled (welcomed or closed) or the socket ends. Counts are per process."""

from __future__ import annotations

from collections import Counter

from ..errors import RateLimited

RETRY_AFTER_S = 5.0


class UnauthenticatedSockets:
    def __init__(self, per_address: int, total: int) -> None:
        self._per_address = per_address
        self._total = total
        self._by_address: Counter[str] = Counter()
        self._count = 0

    def acquire(self, address: str) -> None:
        """Take a slot for a socket from `address`; RateLimited when a cap is reached."""
        if self._count >= self._total or self._by_address[address] >= self._per_address:
            raise RateLimited("Too many connections are opening; try again shortly.",
                              retry_after_s=RETRY_AFTER_S)
        self._by_address[address] += 1
        self._count += 1

    def release(self, address: str) -> None:
        if self._by_address[address] <= 0:
            return
        self._by_address[address] -= 1
        if self._by_address[address] == 0:
            del self._by_address[address]
        self._count -= 1

    @property
    def count(self) -> int:
        return self._count
