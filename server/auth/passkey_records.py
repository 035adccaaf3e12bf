"""Stored passkeys (WebAuthn credentials): a typed repository over the DocumentStore.

A record holds what the WebAuthn spec says a relying party keeps (§4 "credential record"): the
credential id, the COSE public key, the signature counter, the transports, the backup flags —
plus the owner's own name for it, when it was added and last used. Nothing biometric ever
reaches the server: a fingerprint or face unlocks the key inside the authenticator only.

Documents are keyed by our own id ("pk_" + 20 hex, short enough for the audit log) and indexed
by account and by a hash of the credential id (a credential id can be up to 1023 bytes).
The account's WebAuthn user handle (64 random bytes, never the e-mail) is one more small
document, so every passkey of an account carries the same handle.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import NotFound
from ..store.base import Store
from .accounts import cleaned_name

KIND = "passkey"
USER_KIND = "webauthn_user"
ACCOUNT_INDEX = "account"
CREDENTIAL_INDEX = "credential"
MAX_NAME = 60
MAX_PASSKEYS_PER_ACCOUNT = 20
_PASSKEY_ID = re.compile(r"pk_[0-9a-f]{20}")


def credential_key(credential_id_b64: str) -> str:
    return hashlib.sha256(b"teleconsult/passkey/" + credential_id_b64.encode("ascii")).hexdigest()


def check_passkey_name(name: object) -> str:
    return cleaned_name(name, MAX_NAME, code="invalid_passkey_name", missing="Give this passkey a name.",
                        bad_length="A passkey name has 1 to 60 characters.")


def check_passkey_id(passkey_id: object) -> str:
    if not isinstance(passkey_id, str) or not _PASSKEY_ID.fullmatch(passkey_id):
        raise NotFound("No such passkey.")
    return passkey_id


@dataclass(frozen=True)
class Passkey:
    id: str
    account_id: str
    credential_id: str  # base64url, as the browser reports it
    public_key: str  # base64url of the COSE_Key
    sign_count: int
    transports: tuple[str, ...]
    name: str
    created_at: float
    last_used_at: float | None
    backup_eligible: bool  # BE: may be synced to other devices (fixed for a credential's life)
    backed_up: bool  # BS: is synced now (may change)
    aaguid: str  # authenticator model (zeros when the authenticator does not say)

    def __repr__(self) -> str:
        return f"Passkey(id={self.id!r}, account_id={self.account_id!r})"

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)  # transports: a tuple here, a JSON list in the store

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Passkey:
        return cls(
            id=str(doc["id"]), account_id=str(doc["account_id"]), credential_id=str(doc["credential_id"]),
            public_key=str(doc["public_key"]), sign_count=int(doc["sign_count"]),
            transports=tuple(str(t) for t in doc.get("transports") or ()), name=str(doc["name"]),
            created_at=float(doc["created_at"]),
            last_used_at=None if doc.get("last_used_at") is None else float(doc["last_used_at"]),
            backup_eligible=bool(doc.get("backup_eligible", False)),
            backed_up=bool(doc.get("backed_up", False)),
            aaguid=str(doc.get("aaguid", "")),
        )


def new_passkey_id() -> str:
    return "pk_" + secrets.token_hex(10)


class PasskeyRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, passkey: Passkey) -> None:
        await self._store.put_doc(KIND, passkey.id, passkey.to_doc(), index={
            ACCOUNT_INDEX: passkey.account_id, CREDENTIAL_INDEX: credential_key(passkey.credential_id),
        })

    async def for_account(self, account_id: str) -> list[Passkey]:
        docs = await self._store.find_docs(KIND, ACCOUNT_INDEX, account_id)
        return sorted((Passkey.from_doc(d) for d in docs), key=lambda p: (p.created_at, p.id))

    async def by_credential_id(self, credential_id_b64: str) -> Passkey | None:
        docs = await self._store.find_docs(KIND, CREDENTIAL_INDEX, credential_key(credential_id_b64))
        return Passkey.from_doc(docs[0]) if docs else None

    async def owned(self, account_id: str, passkey_id: str) -> Passkey:
        doc = await self._store.get_doc(KIND, check_passkey_id(passkey_id))
        if doc is None or doc.get("account_id") != account_id:
            raise NotFound("No such passkey.")
        return Passkey.from_doc(doc)

    async def update(self, passkey: Passkey, **changes: Any) -> Passkey:
        updated = replace(passkey, **changes)
        await self.save(updated)
        return updated

    async def delete(self, passkey_id: str) -> bool:
        return await self._store.delete_doc(KIND, passkey_id)

    async def user_handle(self, account_id: str) -> bytes:
        """The account's WebAuthn user.id: random, made once, the same for all its passkeys."""
        doc = await self._store.get_doc(USER_KIND, account_id)
        if doc is not None:
            return bytes.fromhex(str(doc["handle"]))
        handle = secrets.token_bytes(32)
        await self._store.put_doc(USER_KIND, account_id, {"handle": handle.hex()})
        return handle
