"""The auth services bundled for the composition roots (HTTP app, CLI) and the admin acts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..errors import Conflict
from ..store.base import Store
from .accounts import Account, AccountRepository, check_role, email_key
from .enrolment import EnrolmentService
from .login import LoginService
from .mfa_policy import passkey_required
from .notices import MFA_RESET, AccountNotices
from .passkey_login import PasskeyLoginService
from .passkeys import PasskeyService
from .password_policy import PasswordPolicy
from .revocation import SessionRevocations
from .secretbox import SecretBox
from .sessions import STAGE_AUTH, Session, SessionService
from .throttle import LoginThrottle, account_key
from .totp import RECOVERY_KIND


@dataclass(frozen=True)
class AuthServices:
    store: Store
    clock: Clock
    settings: Settings
    audit: AuditLog
    accounts: AccountRepository
    sessions: SessionService
    throttle: LoginThrottle
    enrolment: EnrolmentService
    login: LoginService
    passkeys: PasskeyService
    passkey_login: PasskeyLoginService
    notices: AccountNotices

    def __repr__(self) -> str:
        return "AuthServices()"

    @classmethod
    def build(
        cls, store: Store, clock: Clock, settings: Settings, audit: AuditLog, box: SecretBox | None = None,
        revocations: SessionRevocations | None = None,
    ) -> AuthServices:
        box = box or SecretBox.load_or_create(settings.data_dir)
        accounts = AccountRepository(store, clock)
        sessions = SessionService(store, clock, settings, revocations)
        throttle = LoginThrottle(store, clock)
        passkeys = PasskeyService(store, clock, settings, audit)
        notices = AccountNotices(store, clock)
        return cls(
            store=store, clock=clock, settings=settings, audit=audit, accounts=accounts,
            sessions=sessions, throttle=throttle,
            enrolment=EnrolmentService(store, clock, settings, accounts, box, audit, passkeys),
            login=LoginService(store, clock, accounts, sessions, throttle, box, audit,
                               PasswordPolicy(settings.password_min_length), settings, passkeys.records,
                               notices),
            passkeys=passkeys,
            passkey_login=PasskeyLoginService(settings, accounts, sessions, throttle, passkeys, notices,
                                              audit),
            notices=notices,
        )

    async def current_staff(self, token: str) -> tuple[Account, Session] | None:
        """The account and authenticated session behind a cookie token, or None."""
        session = await self.sessions.get(token)
        return None if session is None else await self._staff_of(session)

    async def staff_session_valid(self, id_hash: str) -> bool:
        """Is this (authenticated) staff session still good — not revoked, not expired, its
        account still active? For holders that re-check without a cookie (host WebSockets);
        does not count as activity."""
        return id_hash in await self.staff_sessions_valid((id_hash,))

    async def staff_sessions_valid(self, id_hashes: Iterable[str]) -> set[str]:
        """`staff_session_valid` for many sessions at once (two store round trips in all): the
        hashes among `id_hashes` whose session is still good. A session whose account is gone
        or disabled is revoked (as `_staff_of` does for a cookie)."""
        sessions = {h: s for h, s in (await self.sessions.live_among(id_hashes)).items()
                    if s.stage == STAGE_AUTH}
        accounts = await self.accounts.get_many({s.account_id for s in sessions.values()})
        valid = set()
        for id_hash, session in sessions.items():
            account = accounts.get(session.account_id)
            if account is not None and account.active:
                valid.add(id_hash)
            else:
                await self.sessions.revoke(id_hash)
        return valid

    async def _staff_of(self, session: Session) -> tuple[Account, Session] | None:
        if session.stage != STAGE_AUTH:
            return None
        account = await self.accounts.get(session.account_id)
        if account is None or not account.active:
            await self.sessions.revoke(session.id_hash)
            return None
        return account, session

    async def passkey_setup_required(self, account: Account) -> bool:
        """The policy holds this account until it registers a passkey (mfa_policy.py)."""
        if not passkey_required(self.settings, account.role):
            return False
        return not await self.passkeys.has_any(account.id)

    # -- administrator acts (CLI, admin page) ---------------------------------------------------

    async def add_user(self, *, email: str, role: str, display_name: str, actor: str | None) -> tuple[
        Account, str
    ]:
        """Create a not-yet-enrolled account; returns it and its enrolment link token."""
        account = await self.accounts.create(email=email, display_name=display_name, role=role)
        token = await self.enrolment.issue_link("enrol", account.id)
        await self.audit.record("account.created", actor=actor, target={"account": account.id},
                                outcome=role)
        return account, token

    async def disable(self, account_id: str, *, actor: str | None) -> int:
        """Disable and end every session; returns how many sessions ended."""
        await self.accounts.update(account_id, disabled=True)
        ended = await self.sessions.revoke_all(account_id)
        await self.audit.record("account.disabled", actor=actor, target={"account": account_id})
        await self.audit.record("session.revoked", actor=actor, target={"account": account_id},
                                outcome="account_disabled")
        return ended

    async def enable(self, account_id: str, *, actor: str | None) -> None:
        """Enable, and unlock after too many failures (the throttle forgets the account)."""
        account = await self.accounts.update(account_id, disabled=False, locked=False)
        await self.throttle.reset_account(account_key(email_key(account.email)))
        await self.audit.record("account.enabled", actor=actor, target={"account": account_id})

    async def reset_mfa(self, account_id: str, *, actor: str | None) -> str:
        """Recovery when every factor is lost: forget the TOTP secret, the recovery codes and every
        passkey, end sessions, tell the person at their next sign-in; returns a new enrolment token."""
        account = await self.accounts.require(account_id)
        if account.disabled:
            raise Conflict("Enable the account first.", code="account_disabled")
        for key in account.recovery_keys:
            await self.store.delete_token(RECOVERY_KIND, key)
        await self.accounts.update(account_id, totp_sealed=None, mfa_enrolled=False, recovery_keys=())
        await self.passkeys.remove_all(account_id, actor=actor)
        await self.notices.post(account_id, MFA_RESET)
        await self.sessions.revoke_all(account_id)
        token = await self.enrolment.issue_link("reset", account_id)
        await self.audit.record("account.mfa_reset", actor=actor, target={"account": account_id})
        await self.audit.record("session.revoked", actor=actor, target={"account": account_id},
                                outcome="mfa_reset")
        return token

    async def change_role(self, account_id: str, role: str, *, actor: str | None) -> Account:
        """Give an account the other role; its sessions end (they carried the old role)."""
        account = await self.accounts.require(account_id)
        if account.role == check_role(role):
            return account
        account = await self.accounts.update(account_id, role=role)
        await self.sessions.revoke_all(account_id)
        await self.audit.record("account.role_changed", actor=actor, target={"account": account_id},
                                outcome=role)
        await self.audit.record("session.revoked", actor=actor, target={"account": account_id},
                                outcome="role_changed")
        return account
