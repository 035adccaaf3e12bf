"""Login throttling per account and per client address (DESIGN §4).

Each failed password or code counts against two keys: the account (keyed by the hash of the
e-mail typed, so unknown e-mails behave exactly like known ones) and the client address
(hashed: no address is stored in clear). After FREE_FAILURES consecutive failures a key must
wait 2^(n-FREE_FAILURES) s (capped at MAX_BACKOFF_S) before the next attempt, measured on the
injected clock; while waiting, every attempt — right credentials included — gets RateLimited
with the remaining time. At LOCK_FAILURES consecutive failures an account key is locked until
an administrator unlocks it (`teleconsult user enable`). A success resets the account key only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .. import metrics
from ..clock import Clock
from ..errors import RateLimited
from ..store.base import Store

FREE_FAILURES = 5
MAX_BACKOFF_S = 15 * 60.0
LOCK_FAILURES = 100
LOCKED_RETRY_AFTER_S = 3600.0
ACCOUNT_WINDOW_S = 30 * 24 * 3600.0  # "consecutive" failures are remembered this long at most
ADDRESS_WINDOW_S = 24 * 3600.0
STATE_KIND = "login_throttle"


def backoff_s(failures: int) -> float:
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_BACKOFF_S, float(2 ** min(failures - FREE_FAILURES, 20)))


def address_key(address: str) -> str:
    return "addr-" + hashlib.sha256(b"teleconsult/address/" + address.encode("utf-8")).hexdigest()[:40]


def account_key(email_hash: str) -> str:
    return "acct-" + email_hash[:40]


@dataclass(frozen=True)
class FailureOutcome:
    account_failures: int
    locked_now: bool  # this failure reached LOCK_FAILURES


class LoginThrottle:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def check(self, *, account: str, address: str) -> None:
        """Raise RateLimited when either key must still wait (or the account key is locked)."""
        now = self._clock.now()
        wait = 0.0
        if await self._store.get_count(f"login-fail:{account}") >= LOCK_FAILURES:
            wait = LOCKED_RETRY_AFTER_S
        for key in (account, address):
            state = await self._store.get_doc(STATE_KIND, key)
            if state is not None:
                wait = max(wait, float(state.get("until", 0.0)) - now)
        if wait > 0:
            metrics.LOGIN_THROTTLED.inc()
            raise RateLimited("Too many attempts; try again later.", retry_after_s=wait)

    async def record_failure(self, *, account: str, address: str) -> FailureOutcome:
        now = self._clock.now()
        counts: dict[str, int] = {}
        for key, window in ((account, ACCOUNT_WINDOW_S), (address, ADDRESS_WINDOW_S)):
            n = await self._store.incr(f"login-fail:{key}", window)
            counts[key] = n
            delay = backoff_s(n)
            if delay > 0:
                await self._store.put_doc(STATE_KIND, key, {"until": now + delay}, ttl_s=window)
        return FailureOutcome(account_failures=counts[account], locked_now=counts[account] == LOCK_FAILURES)

    async def reset_account(self, account: str) -> None:
        await self._store.reset_count(f"login-fail:{account}")
        await self._store.delete_doc(STATE_KIND, account)
