"""Staff accounts: a typed repository over the DocumentStore (kind "account").

The login e-mail is kept in the document (it is shown to its owner and administrators) and
indexed by a hash of its lower-cased form. Passwords are Argon2id hashes (passwords.py); the
TOTP secret is sealed with the app secret key (secretbox.py), bound to the account id.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..clock import Clock
from ..errors import Conflict, InvalidInput, NotFound
from ..store.base import Store

KIND = "account"
EMAIL_INDEX = "email"
ROLES = ("admin", "doctor")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}")
MAX_DISPLAY_NAME = 100


def normalise_email(email: str) -> str:
    if not isinstance(email, str):
        raise InvalidInput("An e-mail address is required.", code="invalid_email")
    folded = email.strip().lower()
    if not _EMAIL.fullmatch(folded) or "." not in folded.rsplit("@", 1)[1]:
        raise InvalidInput("This is not a valid e-mail address.", code="invalid_email")
    return folded


def email_key(email: str) -> str:
    """Stable, non-reversible-at-a-glance key for an e-mail (index value, throttle key)."""
    return hashlib.sha256(b"teleconsult/email/" + email.strip().lower().encode("utf-8")).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput("The role must be admin or doctor.", code="invalid_role")
    return role


def cleaned_name(name: object, most: int, *, code: str, missing: str, bad_length: str) -> str:
    """A name a person types, white space folded, 1 to `most` characters; `missing` when it is not
    text, `bad_length` when it is empty or too long (both under the error code `code`)."""
    if not isinstance(name, str):
        raise InvalidInput(missing, code=code)
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > most:
        raise InvalidInput(bad_length, code=code)
    return cleaned


def check_display_name(name: str) -> str:
    return cleaned_name(name, MAX_DISPLAY_NAME, code="invalid_name", missing="A display name is required.",
                        bad_length="The display name must have 1 to 100 characters.")


def new_account_id() -> str:
    return "acc_" + secrets.token_hex(10)


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    display_name: str
    role: str
    created_at: float
    password_hash: str | None = None
    totp_sealed: str | None = None
    mfa_enrolled: bool = False
    disabled: bool = False
    locked: bool = False
    recovery_keys: tuple[str, ...] = ()
    enrolled_at: float | None = None

    @property
    def active(self) -> bool:
        """May log in: enrolled, not disabled, not locked."""
        return self.mfa_enrolled and self.password_hash is not None and not self.disabled and not self.locked

    def __repr__(self) -> str:  # never print hashes or sealed secrets
        return f"Account(id={self.id!r}, role={self.role!r}, active={self.active})"

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["recovery_keys"] = list(self.recovery_keys)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Account:
        return cls(
            id=str(doc["id"]),
            email=str(doc["email"]),
            display_name=str(doc["display_name"]),
            role=str(doc["role"]),
            created_at=float(doc["created_at"]),
            password_hash=doc.get("password_hash"),
            totp_sealed=doc.get("totp_sealed"),
            mfa_enrolled=bool(doc.get("mfa_enrolled", False)),
            disabled=bool(doc.get("disabled", False)),
            locked=bool(doc.get("locked", False)),
            recovery_keys=tuple(doc.get("recovery_keys") or ()),
            enrolled_at=doc.get("enrolled_at"),
        )


class AccountRepository:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def get(self, account_id: str) -> Account | None:
        if not isinstance(account_id, str) or not account_id:
            return None
        doc = await self._store.get_doc(KIND, account_id)
        return Account.from_doc(doc) if doc else None

    async def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """The existing accounts among `account_ids`, by id, in one store round trip."""
        ids = [a for a in account_ids if isinstance(a, str) and a]
        return {i: Account.from_doc(doc) for i, doc in (await self._store.get_docs(KIND, ids)).items()}

    async def require(self, account_id: str) -> Account:
        account = await self.get(account_id)
        if account is None:
            raise NotFound("No such account.")
        return account

    async def find_by_email(self, email: str) -> Account | None:
        docs = await self._store.find_docs(KIND, EMAIL_INDEX, email_key(email))
        return Account.from_doc(docs[0]) if docs else None

    async def list(self) -> list[Account]:
        accounts = [Account.from_doc(d) for d in await self._store.list_docs(KIND)]
        return sorted(accounts, key=lambda a: (a.created_at, a.id))

    async def any_exists(self) -> bool:
        return bool(await self._store.list_docs(KIND))

    async def create(self, *, email: str, display_name: str, role: str) -> Account:
        """A new, not yet enrolled account (no password, no TOTP)."""
        email = normalise_email(email)
        account = Account(
            id=new_account_id(),
            email=email,
            display_name=check_display_name(display_name),
            role=check_role(role),
            created_at=self._clock.now(),
        )
        if await self.find_by_email(email) is not None:
            raise Conflict("An account with this e-mail already exists.", code="email_taken")
        await self.save(account)
        return account

    async def save(self, account: Account) -> None:
        await self._store.put_doc(
            KIND, account.id, account.to_doc(), index={EMAIL_INDEX: email_key(account.email)}
        )

    async def update(self, account_id: str, **changes: Any) -> Account:
        account = replace(await self.require(account_id), **changes)
        await self.save(account)
        return account
