"""Passkeys (WebAuthn Level 2): the registration and authentication ceremonies. Layer 3.

- The relying party is the public URL (Settings.base_url): its host name is the RP ID and its
  scheme://host[:port] the only accepted origin, so an assertion made on any other site
  (a phishing copy included) is refused.
- A challenge is 32 random bytes, kept in the store as a one-time token for CHALLENGE_TTL_S,
  bound to its purpose and to who asked (a session, an enrolment); verifying consumes it first,
  so each challenge is spent once whether the answer is right or not — a replayed assertion
  finds no challenge.
- Signature counter (§6.1.1): when the authenticator keeps one and it did not grow, the
  assertion is refused (a cloned authenticator) and audited. Backup flags (§6.3.3 of Level 3):
  BS without BE is refused; BE never changes for a credential; BS is kept up to date.
- Every act is audited: registered, used, refused (with a reason code), renamed, removed, reset.

The ceremonies are verified by py_webauthn (`webauthn`); this module adds the store, the
binding, the counters and flags, and the audit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, NoReturn

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.parse_registration_credential_json import parse_registration_credential_json
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..errors import Conflict, Gone, InvalidInput, Unauthenticated
from ..store.base import Store
from .passkey_records import (
    MAX_PASSKEYS_PER_ACCOUNT,
    Passkey,
    PasskeyRepository,
    check_passkey_name,
    new_passkey_id,
)

CHALLENGE_KIND = "passkey_challenge"
CHALLENGE_TTL_S = 120.0
RP_NAME = "teleconsult"
MAX_CREDENTIAL_JSON = 16 * 1024
# Purposes a challenge is issued for; verify refuses a challenge of another purpose.
REGISTER = "register"  # a signed-in person adds one (account page, or sent there by the policy)
ENROL = "enrol"  # first-run setup / enrolment link: a passkey instead of TOTP
SECOND_FACTOR = "second_factor"  # after the password
PASSWORDLESS = "passwordless"  # a discoverable passkey with user verification, no password
REAUTH = "reauth"  # confirm it is you before a sensitive act


class PasskeyRefused(Unauthenticated):
    """This passkey could not be accepted."""

    code = "passkey_refused"


@dataclass(frozen=True)
class Ceremony:
    ceremony_id: str  # names the stored challenge; sent back with the browser's answer
    options: dict[str, Any]  # PublicKeyCredentialCreation/RequestOptions as JSON for the browser

    def __repr__(self) -> str:
        return "Ceremony()"


@dataclass(frozen=True)
class NewPasskey:
    """A verified registration, not stored yet (enrolment stores it with the account)."""

    passkey: Passkey
    user_verified: bool


def _ceremony_key(ceremony_id: str) -> str:
    return hashlib.sha256(b"teleconsult/passkey-ceremony/" + ceremony_id.encode("utf-8")).hexdigest()


def _binding(bound_to: str) -> str:
    return hashlib.sha256(b"teleconsult/passkey-binding/" + bound_to.encode("utf-8")).hexdigest()


def refusal_reason(exc: Exception) -> str:
    """A short audit code for why the library refused (its messages may echo origins)."""
    text = str(exc).lower()
    for needle, reason in (("origin", "wrong_origin"), ("rp id", "wrong_rp_id"), ("sign count", "counter"),
                           ("signature", "bad_signature"), ("challenge", "wrong_challenge"),
                           ("verification", "no_user_verification"), ("present", "no_user_presence"),
                           ("backup", "backup_flags"), ("type", "wrong_type")):
        if needle in text:
            return reason
    return "malformed"


def _credential_dict(credential: object) -> dict[str, Any]:
    if not isinstance(credential, dict) or len(json.dumps(credential)) > MAX_CREDENTIAL_JSON:
        raise InvalidInput("The passkey answer is malformed.", code="invalid_passkey_response")
    if not isinstance(credential.get("id"), str) or not isinstance(credential.get("response"), dict):
        raise InvalidInput("The passkey answer is malformed.", code="invalid_passkey_response")
    return credential


class PasskeyService:
    def __init__(self, store: Store, clock: Clock, settings: Settings, audit: AuditLog) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._audit = audit
        self.records = PasskeyRepository(store)

    @property
    def rp_id(self) -> str:
        return self._settings.webauthn_rp_id

    @property
    def origin(self) -> str:
        return self._settings.webauthn_origin

    # -- challenges -------------------------------------------------------------------------

    async def _issue(self, purpose: str, bound_to: str, account_id: str | None,
                     challenge: bytes) -> str:
        ceremony_id = secrets.token_urlsafe(32)
        await self._store.put_token(CHALLENGE_KIND, _ceremony_key(ceremony_id), {
            "purpose": purpose, "binding": _binding(bound_to), "account_id": account_id,
            "challenge": bytes_to_base64url(challenge), "expires_at": self._clock.now() + CHALLENGE_TTL_S,
        }, CHALLENGE_TTL_S)
        return ceremony_id

    async def _spend(self, ceremony_id: object, purpose: str, bound_to: str) -> dict[str, Any]:
        """Consume the challenge (once, whatever happens next) and check purpose and binding."""
        if not isinstance(ceremony_id, str) or not 20 <= len(ceremony_id) <= 128:
            raise Gone("This passkey request has expired; try again.", code="passkey_expired")
        payload = await self._store.consume_token(CHALLENGE_KIND, _ceremony_key(ceremony_id))
        if (
            payload is None
            or float(payload.get("expires_at", 0)) <= self._clock.now()
            or payload.get("purpose") != purpose
            or not hmac.compare_digest(str(payload.get("binding", "")).encode(), _binding(bound_to).encode())
        ):
            raise Gone("This passkey request has expired; try again.", code="passkey_expired")
        return payload

    # -- registration -----------------------------------------------------------------------

    async def registration_options(
        self, *, purpose: str, bound_to: str, account_id: str, user_name: str, display_name: str,
    ) -> Ceremony:
        existing = await self.records.for_account(account_id)
        if len(existing) >= MAX_PASSKEYS_PER_ACCOUNT:
            raise Conflict("This account has the most passkeys allowed; remove one first.",
                           code="too_many_passkeys")
        challenge = secrets.token_bytes(32)
        options = generate_registration_options(
            rp_id=self.rp_id, rp_name=RP_NAME, user_name=user_name, user_display_name=display_name,
            user_id=await self.records.user_handle(account_id), challenge=challenge,
            timeout=int(CHALLENGE_TTL_S * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                                 for p in existing],
        )
        ceremony_id = await self._issue(purpose, bound_to, account_id, challenge)
        return Ceremony(ceremony_id, json.loads(options_to_json(options)))

    async def verify_registration(
        self, ceremony_id: object, credential: object, *, purpose: str, bound_to: str, name: object,
    ) -> NewPasskey:
        """Check the browser's answer to navigator.credentials.create(); nothing is stored."""
        payload = await self._spend(ceremony_id, purpose, bound_to)
        account_id = str(payload["account_id"])
        label = check_passkey_name(name)
        answer = _credential_dict(credential)
        try:
            parsed = parse_registration_credential_json(answer)
            verified = verify_registration_response(
                credential=parsed, expected_challenge=base64url_to_bytes(str(payload["challenge"])),
                expected_rp_id=self.rp_id, expected_origin=self.origin, require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            await self._audit.record("passkey.refused", actor=account_id, target={"account": account_id},
                                     outcome=f"register_{refusal_reason(exc)}")
            raise InvalidInput("This passkey could not be registered.", code="passkey_refused") from None
        credential_id = bytes_to_base64url(verified.credential_id)
        if await self.records.by_credential_id(credential_id) is not None:
            raise Conflict("This passkey is already registered.", code="passkey_exists")
        transports = tuple(sorted({t.value for t in (parsed.response.transports or [])}))
        passkey = Passkey(
            id=new_passkey_id(), account_id=account_id, credential_id=credential_id,
            public_key=bytes_to_base64url(verified.credential_public_key), sign_count=verified.sign_count,
            transports=transports, name=label, created_at=self._clock.now(), last_used_at=None,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up, aaguid=verified.aaguid,
        )
        return NewPasskey(passkey, verified.user_verified)

    async def add(self, new: NewPasskey, *, actor: str | None) -> Passkey:
        await self.records.save(new.passkey)
        await self._audit.record("passkey.registered", actor=actor,
                                 target={"account": new.passkey.account_id, "passkey": new.passkey.id},
                                 outcome="synced" if new.passkey.backup_eligible else "device_bound")
        return new.passkey

    # -- authentication ---------------------------------------------------------------------

    async def authentication_options(
        self, *, purpose: str, bound_to: str, account_id: str | None,
    ) -> Ceremony:
        """Options for navigator.credentials.get(). With an account: its passkeys only; without
        (passwordless): any discoverable passkey of this site, user verification required."""
        challenge = secrets.token_bytes(32)
        allow: list[PublicKeyCredentialDescriptor] | None = None
        if account_id is not None:
            allow = [PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                     for p in await self.records.for_account(account_id)]
        uv = UserVerificationRequirement.REQUIRED if purpose == PASSWORDLESS \
            else UserVerificationRequirement.PREFERRED
        options = generate_authentication_options(
            rp_id=self.rp_id, challenge=challenge, timeout=int(CHALLENGE_TTL_S * 1000),
            allow_credentials=allow or [], user_verification=uv,
        )
        ceremony_id = await self._issue(purpose, bound_to, account_id, challenge)
        return Ceremony(ceremony_id, json.loads(options_to_json(options)))

    async def verify_assertion(
        self, ceremony_id: object, credential: object, *, purpose: str, bound_to: str,
    ) -> Passkey:
        """Check the browser's answer to navigator.credentials.get(); returns the passkey used
        (counter, flags and last use updated). Raises PasskeyRefused (or Gone for a spent challenge)."""
        payload = await self._spend(ceremony_id, purpose, bound_to)
        answer = _credential_dict(credential)
        expected_account = payload.get("account_id")
        passkey = await self.records.by_credential_id(str(answer["id"]))
        if passkey is None or (expected_account is not None and passkey.account_id != expected_account):
            await self._refuse(expected_account, None, purpose, "unknown_credential")
        handle = answer["response"].get("userHandle")
        if handle and not await self._handle_matches(passkey.account_id, handle):
            await self._refuse(passkey.account_id, passkey, purpose, "wrong_user_handle")
        try:
            verified = verify_authentication_response(
                credential=answer, expected_challenge=base64url_to_bytes(str(payload["challenge"])),
                expected_rp_id=self.rp_id, expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(passkey.public_key),
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=purpose == PASSWORDLESS,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            await self._refuse(passkey.account_id, passkey, purpose, refusal_reason(exc))
        eligible = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
        if eligible != passkey.backup_eligible:
            await self._refuse(passkey.account_id, passkey, purpose, "backup_eligibility_changed")
        updated = await self.records.update(
            passkey, sign_count=verified.new_sign_count, backed_up=verified.credential_backed_up,
            last_used_at=self._clock.now(),
        )
        await self._audit.record("passkey.used", actor=passkey.account_id,
                                 target={"account": passkey.account_id, "passkey": passkey.id},
                                 outcome=purpose)
        return updated

    async def _handle_matches(self, account_id: str, handle: object) -> bool:
        try:
            given = base64url_to_bytes(str(handle))
        except ValueError:
            return False
        return hmac.compare_digest(given, await self.records.user_handle(account_id))

    async def _refuse(
        self, account_id: object, passkey: Passkey | None, purpose: str, reason: str,
    ) -> NoReturn:
        actor = str(account_id) if isinstance(account_id, str) else None
        target: dict[str, str] = {"account": actor or "unknown"}
        if passkey is not None:
            target["passkey"] = passkey.id
        await self._audit.record("passkey.refused", actor=actor, target=target,
                                 outcome=f"{purpose}_{reason}"[:32])
        raise PasskeyRefused()

    # -- management ---------------------------------------------------------------------------

    async def rename(self, account_id: str, passkey_id: str, name: object, *, actor: str) -> Passkey:
        passkey = await self.records.owned(account_id, passkey_id)
        updated = await self.records.update(passkey, name=check_passkey_name(name))
        await self._audit.record("passkey.renamed", actor=actor, target={"account": account_id,
                                                                        "passkey": passkey.id})
        return updated

    async def remove(self, account_id: str, passkey_id: str, *, actor: str) -> None:
        passkey = await self.records.owned(account_id, passkey_id)
        await self.records.delete(passkey.id)
        await self._audit.record("passkey.removed", actor=actor, target={"account": account_id,
                                                                        "passkey": passkey.id})

    async def remove_all(self, account_id: str, *, actor: str | None) -> int:
        """Administrator reset: every passkey of the account goes."""
        removed = 0
        for passkey in await self.records.for_account(account_id):
            if await self.records.delete(passkey.id):
                removed += 1
        if removed:
            await self._audit.record("passkey.removed", actor=actor, target={"account": account_id},
                                     outcome="admin_reset")
        return removed

    async def has_any(self, account_id: str) -> bool:
        return bool(await self.records.for_account(account_id))
