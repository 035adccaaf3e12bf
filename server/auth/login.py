"""Logging in (password, then TOTP or a recovery code), re-authentication, password change.

Every wrong factor gives the same error (InvalidCredentials) whichever it was, and counts
against the throttle for the account (by e-mail hash) and the client address. A login costs
one Argon2id verify whether the e-mail exists or not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import metrics
from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..errors import InvalidInput, Unauthenticated
from ..store.base import Store
from .accounts import Account, AccountRepository, email_key
from .mfa_policy import totp_accepted
from .notices import AccountNotices, Notice
from .passkey_records import PasskeyRepository
from .password_policy import PasswordPolicy
from .passwords import hash_password, verify_password
from .secretbox import SecretBox
from .sessions import STAGE_AUTH, STAGE_MFA, Session, SessionService
from .throttle import LoginThrottle, account_key, address_key
from .totp import issue_recovery_codes, use_recovery_code, verify_totp

MAX_MFA_FAILURES_PER_SESSION = 5


class InvalidCredentials(Unauthenticated):
    """The e-mail, password or code is not right."""

    code = "invalid_credentials"


@dataclass(frozen=True)
class LoginResult:
    token: str  # new session cookie value
    session: Session
    account: Account
    notice: Notice | None = None  # to show once at this sign-in (e.g. an administrator's reset)

    def __repr__(self) -> str:
        return f"LoginResult(account={self.account!r})"


@dataclass(eq=False, repr=False)  # a service: compared by identity, no repr of its parts
class LoginService:
    _store: Store
    _clock: Clock
    _accounts: AccountRepository
    _sessions: SessionService
    _throttle: LoginThrottle
    _box: SecretBox
    _audit: AuditLog
    _policy: PasswordPolicy
    _settings: Settings
    _passkeys: PasskeyRepository
    _notices: AccountNotices

    async def _fail(
        self, account: Account | None, acct_key: str, addr_key: str, step: str
    ) -> InvalidCredentials:
        metrics.LOGIN_FAILURES.labels(step=step).inc()
        outcome = await self._throttle.record_failure(account=acct_key, address=addr_key)
        actor = account.id if account else None
        await self._audit.record("auth.login", actor=actor, target={"account": actor or "unknown"},
                                 outcome=f"failed_{step}")
        if outcome.locked_now and account is not None:
            await self._accounts.update(account.id, locked=True)
            revoked = await self._sessions.revoke_all(account.id)
            await self._audit.record("account.locked", actor=None, target={"account": account.id},
                                     outcome="too_many_failures")
            if revoked:
                await self._audit.record("session.revoked", actor=None, target={"account": account.id},
                                         outcome="account_locked")
        return InvalidCredentials()

    async def password_step(
        self, email: str, password: str, address: str, *, device: str = "", shared: bool = False,
    ) -> LoginResult:
        """Check the password; on success return a new pre-MFA session."""
        email = email.strip().lower() if isinstance(email, str) else ""
        acct_key, addr_key = account_key(email_key(email)), address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        account = await self._accounts.find_by_email(email) if 3 <= len(email) <= 320 else None
        usable = account if account is not None and account.active else None
        ok = await verify_password(password, usable.password_hash if usable else None)
        if not ok or usable is None:
            raise await self._fail(account, acct_key, addr_key, "password")
        token, session = await self._sessions.create(usable.id, STAGE_MFA, device=device, shared=shared)
        return LoginResult(token, session, usable)

    async def mfa_step(
        self, mfa_token: str, address: str, *, code: str | None = None, recovery_code: str | None = None,
    ) -> LoginResult:
        """Check the second factor against a pre-MFA session; on success a new authenticated one."""
        session = await self._sessions.get(mfa_token, touch=False) if mfa_token else None
        if session is None or session.stage != STAGE_MFA:
            raise Unauthenticated("Your sign-in has expired; start again.", code="login_expired")
        account = await self._accounts.get(session.account_id)
        if account is None:
            await self._sessions.revoke(session.id_hash)
            raise Unauthenticated("Your sign-in has expired; start again.", code="login_expired")
        acct_key, addr_key = account_key(email_key(account.email)), address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        ok = False
        used_recovery = False
        has_passkey = bool(await self._passkeys.for_account(account.id))
        totp_ok = totp_accepted(self._settings, has_passkey=has_passkey)
        if account.active:
            if recovery_code is not None:
                ok = await use_recovery_code(self._store, account.id, recovery_code)
                used_recovery = ok
            elif code is not None and totp_ok and account.totp_sealed is not None:
                secret = self._box.open(account.totp_sealed, owner=account.id)
                ok = await verify_totp(self._store, self._clock, owner=account.id, secret=secret, code=code)
        if not ok:
            failures = session.mfa_failures + 1
            if failures >= MAX_MFA_FAILURES_PER_SESSION:
                await self._sessions.revoke(session.id_hash)
            else:
                await self._sessions.save(replace(session, mfa_failures=failures))
            raise await self._fail(account, acct_key, addr_key, "mfa")
        await self._sessions.revoke(session.id_hash)
        token, new_session = await self._sessions.create(account.id, STAGE_AUTH, device=session.device,
                                                         shared=session.shared)
        await self._throttle.reset_account(acct_key)
        notice = await self._notices.get(account.id)
        await self._notices.clear(account.id)
        await self._audit.record("auth.login", actor=account.id, target={"account": account.id},
                                 outcome="ok_recovery_code" if used_recovery else "ok")
        return LoginResult(token, new_session, account, notice)

    async def reauth(
        self, account: Account, session_hash: str, address: str, *,
        password: str | None = None, code: str | None = None,
    ) -> None:
        """Prove a factor again; sensitive acts are then allowed for Settings.reauth_window_s."""
        acct_key, addr_key = account_key(email_key(account.email)), address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        ok = False
        if password is not None:
            ok = await verify_password(password, account.password_hash)
        elif code is not None and account.totp_sealed is not None:
            secret = self._box.open(account.totp_sealed, owner=account.id)
            ok = await verify_totp(self._store, self._clock, owner=account.id, secret=secret, code=code)
        if not ok:
            raise await self._fail(account, acct_key, addr_key, "reauth")
        await self._sessions.mark_authenticated(session_hash)
        await self._audit.record("auth.reauth", actor=account.id, target={"account": account.id})

    async def change_password(
        self, account: Account, session_hash: str, address: str, *, current: str, new: str,
    ) -> int:
        """Returns how many other sessions were ended (all but this one)."""
        acct_key, addr_key = account_key(email_key(account.email)), address_key(address)
        await self._throttle.check(account=acct_key, address=addr_key)
        if not await verify_password(current, account.password_hash):
            raise await self._fail(account, acct_key, addr_key, "password_change")
        self._policy.check(new, email=account.email, display_name=account.display_name)
        if new == current:
            raise InvalidInput("The new password must differ from the current one.", code="password_reused")
        await self._accounts.update(account.id, password_hash=await hash_password(new))
        ended = await self._sessions.revoke_all(account.id, except_hash=session_hash)
        await self._sessions.mark_authenticated(session_hash)
        await self._audit.record("account.password_changed", actor=account.id, target={"account": account.id})
        if ended:
            await self._audit.record("session.revoked", actor=account.id, target={"account": account.id},
                                     outcome="password_changed")
        return ended

    async def regenerate_recovery_codes(self, account: Account) -> list[str]:
        codes, keys = await issue_recovery_codes(self._store, account.id, account.recovery_keys)
        await self._accounts.update(account.id, recovery_keys=keys)
        await self._audit.record("account.recovery_codes", actor=account.id, target={"account": account.id},
                                 outcome="regenerated")
        return codes
