"""One-time links to enrol a staff member, and the enrolment itself.

A link `<base_url>/enrol#<token>` carries a 256-bit token in the URL fragment (never sent to
the server by the browser). The store keeps the token's hash as a one-time token with the
link's purpose: "setup" (first administrator, only while no account exists), "enrol" (a user
added by `teleconsult user add`) or "reset" (after `teleconsult user reset-mfa`).

`start` checks the link without consuming it (closing the tab does not burn it), draws a new
TOTP secret and opens a short enrolment bound to a browser cookie. `finish` checks the
password policy and a current code, then consumes the link atomically: exactly one finish wins.
`finish_with_passkey` does the same with a new passkey (passkeys.py) instead of the TOTP code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..errors import Conflict, Forbidden, Gone, InvalidInput
from ..store.base import Store
from .accounts import Account, AccountRepository, check_display_name, new_account_id, normalise_email
from .mfa_policy import passkeys_enabled
from .notices import MFA_RESET, AccountNotices
from .passkeys import ENROL, Ceremony, PasskeyService
from .password_policy import PasswordPolicy
from .passwords import hash_password
from .secretbox import SecretBox
from .totp import issue_recovery_codes, new_totp_secret, provisioning_uri, qr_svg, verify_totp

LINK_KIND = "enrol_link"
ENROLMENT_KIND = "enrolment"
ENROLMENT_TTL_S = 30 * 60.0
PURPOSES = ("setup", "enrol", "reset")


def link_key(token: str) -> str:
    return hashlib.sha256(b"teleconsult/enrol/" + token.encode("utf-8")).hexdigest()


def _binding_hash(binding: str) -> str:
    return hashlib.sha256(b"teleconsult/enrol-binding/" + binding.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EnrolmentStart:
    enrolment_id: str
    binding: str  # goes into an HttpOnly cookie; required by finish
    email: str | None  # None for the first administrator (they type it)
    totp_secret: str
    totp_uri: str
    qr_svg: str
    reset_at: float | None = None  # an administrator reset this account's factors then

    def __repr__(self) -> str:
        return f"EnrolmentStart(enrolment_id={self.enrolment_id!r})"


@dataclass(frozen=True)
class EnrolmentResult:
    account: Account
    recovery_codes: list[str]

    def __repr__(self) -> str:
        return f"EnrolmentResult(account={self.account!r})"


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class EnrolmentService:
    _store: Store
    _clock: Clock
    _settings: Settings
    _accounts: AccountRepository
    _box: SecretBox
    _audit: AuditLog
    _passkeys: PasskeyService | None = None

    def link_url(self, token: str) -> str:
        return f"{self._settings.base_url}/enrol#{token}"

    async def issue_link(self, purpose: str, account_id: str | None) -> str:
        if purpose not in PURPOSES:
            raise ValueError("unknown enrolment purpose")
        token = secrets.token_urlsafe(32)
        ttl = self._settings.setup_token_ttl_s if purpose == "setup" else self._settings.enrol_token_ttl_s
        await self._store.put_token(
            LINK_KIND, link_key(token),
            {"purpose": purpose, "account_id": account_id, "expires_at": self._clock.now() + ttl},
            float(ttl),
        )
        return token

    async def issue_setup_link_if_needed(self) -> str | None:
        """A setup token when no account exists yet, else None."""
        if await self._accounts.any_exists():
            return None
        token = await self.issue_link("setup", None)
        await self._audit.record("account.setup_link", actor=None, outcome="issued")
        return token

    async def _link(self, token: str) -> dict[str, object]:
        if not isinstance(token, str) or not 20 <= len(token) <= 128:
            raise Gone("This enrolment link is invalid or has expired.")
        payload = await self._store.peek_token(LINK_KIND, link_key(token))
        if payload is None or float(payload.get("expires_at", 0)) <= self._clock.now():
            raise Gone("This enrolment link is invalid or has expired.")
        return payload

    async def start(self, token: str) -> EnrolmentStart:
        link = await self._link(token)
        purpose = str(link["purpose"])
        email: str | None = None
        if purpose == "setup":
            if await self._accounts.any_exists():
                raise Gone("This setup link is no longer valid: an administrator exists.")
            account_id = new_account_id()
        else:
            account = await self._accounts.require(str(link["account_id"]))
            if account.disabled:
                raise Gone("This enrolment link is invalid or has expired.")
            account_id, email = account.id, account.email
        secret = new_totp_secret()
        enrolment_id = "enr_" + secrets.token_hex(12)
        binding = secrets.token_urlsafe(32)
        await self._store.put_doc(
            ENROLMENT_KIND, enrolment_id,
            {
                "link_key": link_key(token), "purpose": purpose, "account_id": account_id,
                "totp_sealed": self._box.seal(secret, owner=account_id),
                "binding_hash": _binding_hash(binding),
                "expires_at": self._clock.now() + ENROLMENT_TTL_S,
            },
            ttl_s=ENROLMENT_TTL_S,
        )
        uri = provisioning_uri(secret, email or "administrator")
        notices = AccountNotices(self._store, self._clock)
        notice = await notices.get(account_id) if purpose == "reset" else None
        return EnrolmentStart(enrolment_id, binding, email, secret, uri, qr_svg(uri),
                              reset_at=notice.at if notice is not None and notice.code == MFA_RESET else None)

    async def _open(self, enrolment_id: str, binding: str) -> dict[str, object]:
        doc = await self._store.get_doc(ENROLMENT_KIND, enrolment_id) if isinstance(enrolment_id, str) \
            and 0 < len(enrolment_id) <= 64 else None
        if (
            doc is None
            or float(doc["expires_at"]) <= self._clock.now()
            or not isinstance(binding, str)
            or not hmac.compare_digest(_binding_hash(binding).encode(), str(doc["binding_hash"]).encode())
        ):
            raise Gone("This enrolment has expired; open the link again.")
        return doc

    async def _identity_and_password(
        self, doc: dict[str, object], password: str, email: str | None, display_name: str | None,
    ) -> tuple[str | None, str | None]:
        """Check the identity (first administrator) and the password policy; returns the identity."""
        if doc["purpose"] == "setup":
            if email is None or display_name is None:
                raise InvalidInput("Your e-mail address and name are required.", code="identity_required")
            email = normalise_email(email)
            display_name = check_display_name(display_name)
            PasswordPolicy(self._settings.password_min_length).check(
                password, email=email, display_name=display_name)
        else:
            known = await self._accounts.require(str(doc["account_id"]))
            PasswordPolicy(self._settings.password_min_length).check(
                password, email=known.email, display_name=known.display_name)
        return email, display_name

    async def finish(
        self, enrolment_id: str, binding: str, *, password: str, code: str,
        email: str | None = None, display_name: str | None = None,
    ) -> EnrolmentResult:
        doc = await self._open(enrolment_id, binding)
        account_id = str(doc["account_id"])
        email, display_name = await self._identity_and_password(doc, password, email, display_name)
        secret = self._box.open(str(doc["totp_sealed"]), owner=account_id)
        if not await verify_totp(self._store, self._clock, owner=account_id, secret=secret, code=code):
            raise InvalidInput("This code is not right; check your device's time.", code="invalid_code")
        return await self._complete(enrolment_id, doc, password, email, display_name,
                                    totp_sealed=self._box.seal(secret, owner=account_id))

    async def passkey_options(
        self, enrolment_id: str, binding: str, *, email: str | None = None, display_name: str | None = None,
    ) -> Ceremony:
        """Options to create a passkey instead of adding the TOTP secret to an app."""
        if self._passkeys is None or not passkeys_enabled(self._settings):
            raise Forbidden("Passkeys are not enabled here.", code="passkeys_disabled")
        doc = await self._open(enrolment_id, binding)
        account_id = str(doc["account_id"])
        if doc["purpose"] != "setup":
            known = await self._accounts.require(account_id)
            email, display_name = known.email, known.display_name
        return await self._passkeys.registration_options(
            purpose=ENROL, bound_to=enrolment_id, account_id=account_id,
            user_name=email if isinstance(email, str) and email else "administrator",
            display_name=display_name if isinstance(display_name, str) and display_name else "administrator",
        )

    async def finish_with_passkey(
        self, enrolment_id: str, binding: str, *, password: str, ceremony_id: object, credential: object,
        name: object, email: str | None = None, display_name: str | None = None,
    ) -> EnrolmentResult:
        if self._passkeys is None or not passkeys_enabled(self._settings):
            raise Forbidden("Passkeys are not enabled here.", code="passkeys_disabled")
        doc = await self._open(enrolment_id, binding)
        email, display_name = await self._identity_and_password(doc, password, email, display_name)
        new = await self._passkeys.verify_registration(ceremony_id, credential, purpose=ENROL,
                                                       bound_to=enrolment_id, name=name)
        result = await self._complete(enrolment_id, doc, password, email, display_name, totp_sealed=None)
        await self._passkeys.add(new, actor=result.account.id)
        return result

    async def _complete(
        self, enrolment_id: str, doc: dict[str, object], password: str, email: str | None,
        display_name: str | None, *, totp_sealed: str | None,
    ) -> EnrolmentResult:
        """Consume the link (exactly one finish wins) and save the enrolled account."""
        account_id = str(doc["account_id"])
        purpose = str(doc["purpose"])
        password_hash = await hash_password(password)
        if await self._store.consume_token(LINK_KIND, str(doc["link_key"])) is None:
            raise Gone("This enrolment link has already been used or has expired.")
        await self._store.delete_doc(ENROLMENT_KIND, enrolment_id)
        now = self._clock.now()
        if purpose == "setup":
            if await self._accounts.any_exists():
                raise Gone("This setup link is no longer valid: an administrator exists.")
            account = Account(
                id=account_id, email=str(email), display_name=str(display_name), role="admin",
                created_at=now,
            )
        else:
            account = await self._accounts.require(account_id)
            if account.disabled:
                raise Conflict("This account is disabled.", code="account_disabled")
        codes, keys = await issue_recovery_codes(self._store, account_id, account.recovery_keys)
        account = replace(
            account, password_hash=password_hash, totp_sealed=totp_sealed,
            mfa_enrolled=True, recovery_keys=keys, enrolled_at=now,
        )
        await self._accounts.save(account)
        await self._audit.record("account.enrolled", actor=account_id, target={"account": account_id},
                                 outcome=purpose if totp_sealed else f"{purpose}_passkey")
        return EnrolmentResult(account, codes)
