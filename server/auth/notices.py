"""Things a person must be told at their next sign-in (kind "account_notice", one per account).

Today one: "mfa_reset" — an administrator reset their sign-in factors (recovery after every
factor was lost). The login page shows it; a completed sign-in clears it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import Clock
from ..store.base import Store

KIND = "account_notice"
MFA_RESET = "mfa_reset"


@dataclass(frozen=True)
class Notice:
    code: str
    at: float


class AccountNotices:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def post(self, account_id: str, code: str) -> None:
        await self._store.put_doc(KIND, account_id, {"code": code, "at": self._clock.now()})

    async def get(self, account_id: str) -> Notice | None:
        doc = await self._store.get_doc(KIND, account_id)
        return None if doc is None else Notice(str(doc["code"]), float(doc["at"]))

    async def clear(self, account_id: str) -> None:
        await self._store.delete_doc(KIND, account_id)
