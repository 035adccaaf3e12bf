"""Signing in with a passkey: as the second factor after the password, or passwordless (a
discoverable passkey with user verification), and re-authentication with one. Layer 3.

Failures answer like every other wrong factor (PasskeyRefused, 401) and count against the
login throttle: the account's key when the passkey is known, the passkey's own key when it is
not (so a stranger's attempts lock nobody else out), and the client address either way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from ..audit import AuditLog
from ..config import Settings
from ..errors import Forbidden, Unauthenticated
from .accounts import Account, AccountRepository, email_key
from .login import MAX_MFA_FAILURES_PER_SESSION, LoginResult
from .mfa_policy import passkeys_enabled, passwordless_enabled
from .notices import AccountNotices
from .passkeys import PASSWORDLESS, REAUTH, SECOND_FACTOR, Ceremony, PasskeyRefused, PasskeyService
from .sessions import STAGE_AUTH, STAGE_MFA, Session, SessionService
from .throttle import LoginThrottle, account_key, address_key


def _unknown_key(ceremony_answer_id: object) -> str:
    raw = ceremony_answer_id if isinstance(ceremony_answer_id, str) else ""
    return "acct-pk-" + hashlib.sha256(b"teleconsult/passkey-throttle/" + raw.encode()).hexdigest()[:32]


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class PasskeyLoginService:
    _settings: Settings
    _accounts: AccountRepository
    _sessions: SessionService
    _throttle: LoginThrottle
    _passkeys: PasskeyService
    _notices: AccountNotices
    _audit: AuditLog

    def _require_enabled(self, *, passwordless: bool = False) -> None:
        if not (passwordless_enabled(self._settings) if passwordless else passkeys_enabled(self._settings)):
            raise Forbidden("Passkeys are not enabled here.", code="passkeys_disabled")

    async def _mfa_session(self, mfa_token: str) -> tuple[Session, Account]:
        session = await self._sessions.get(mfa_token, touch=False) if mfa_token else None
        account = await self._accounts.get(session.account_id) if session is not None else None
        if session is None or session.stage != STAGE_MFA or account is None or not account.active:
            raise Unauthenticated("Your sign-in has expired; start again.", code="login_expired")
        return session, account

    async def _complete(self, account: Account, *, device: str, shared: bool, how: str) -> LoginResult:
        token, session = await self._sessions.create(account.id, STAGE_AUTH, device=device, shared=shared)
        await self._throttle.reset_account(account_key(email_key(account.email)))
        notice = await self._notices.get(account.id)
        await self._notices.clear(account.id)
        await self._audit.record("auth.login", actor=account.id, target={"account": account.id}, outcome=how)
        return LoginResult(token, session, account, notice)

    # -- second factor ------------------------------------------------------------------------

    async def second_factor_options(self, mfa_token: str) -> Ceremony:
        self._require_enabled()
        session, account = await self._mfa_session(mfa_token)
        return await self._passkeys.authentication_options(
            purpose=SECOND_FACTOR, bound_to=session.id_hash, account_id=account.id)

    async def second_factor_finish(
        self, mfa_token: str, address: str, ceremony_id: object, credential: object,
    ) -> LoginResult:
        self._require_enabled()
        session, account = await self._mfa_session(mfa_token)
        acct_key, addr_key = account_key(email_key(account.email)), address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        try:
            await self._passkeys.verify_assertion(ceremony_id, credential, purpose=SECOND_FACTOR,
                                                  bound_to=session.id_hash)
        except PasskeyRefused:
            await self._throttle.record_failure(account=acct_key, address=addr_key)
            failures = session.mfa_failures + 1  # like wrong codes: the pre-MFA step ends at 5
            if failures >= MAX_MFA_FAILURES_PER_SESSION:
                await self._sessions.revoke(session.id_hash)
            else:
                await self._sessions.save(replace(session, mfa_failures=failures))
            raise
        await self._sessions.revoke(session.id_hash)
        return await self._complete(account, device=session.device, shared=session.shared,
                                    how="ok_passkey")

    # -- passwordless -------------------------------------------------------------------------

    async def passwordless_options(self, binding: str) -> Ceremony:
        self._require_enabled(passwordless=True)
        return await self._passkeys.authentication_options(purpose=PASSWORDLESS, bound_to=binding,
                                                           account_id=None)

    async def passwordless_finish(
        self, binding: str, address: str, ceremony_id: object, credential: object, *,
        device: str = "", shared: bool = False,
    ) -> LoginResult:
        self._require_enabled(passwordless=True)
        answer_id = credential.get("id") if isinstance(credential, dict) else None
        known = await self._passkeys.records.by_credential_id(answer_id) if isinstance(answer_id, str) \
            and len(answer_id) <= 1400 else None
        account = await self._accounts.get(known.account_id) if known is not None else None
        acct_key = account_key(email_key(account.email)) if account is not None else _unknown_key(answer_id)
        addr_key = address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        try:
            passkey = await self._passkeys.verify_assertion(ceremony_id, credential, purpose=PASSWORDLESS,
                                                            bound_to=binding)
        except PasskeyRefused:
            await self._throttle.record_failure(account=acct_key, address=addr_key)
            raise
        account = await self._accounts.get(passkey.account_id)
        if account is None or not account.active:
            await self._throttle.record_failure(account=acct_key, address=addr_key)
            raise PasskeyRefused()
        return await self._complete(account, device=device, shared=shared, how="ok_passwordless")

    # -- re-authentication ------------------------------------------------------------------------

    async def reauth_options(self, account: Account, session_hash: str) -> Ceremony:
        self._require_enabled()
        return await self._passkeys.authentication_options(purpose=REAUTH, bound_to=session_hash,
                                                           account_id=account.id)

    async def reauth_finish(
        self, account: Account, session_hash: str, address: str, ceremony_id: object, credential: object,
    ) -> None:
        self._require_enabled()
        acct_key, addr_key = account_key(email_key(account.email)), address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        try:
            await self._passkeys.verify_assertion(ceremony_id, credential, purpose=REAUTH,
                                                  bound_to=session_hash)
        except PasskeyRefused:
            await self._throttle.record_failure(account=acct_key, address=addr_key)
            raise
        await self._sessions.mark_authenticated(session_hash)
        await self._audit.record("auth.reauth", actor=account.id, target={"account": account.id},
                                 outcome="passkey")
