"""PasskeyService and the sign-in policy against both stores, with a software authenticator
(tests/helpers/passkey_authenticator.py) and a manual clock: challenges single-use, bound and
short-lived; the signature counter and the backup flags as the spec says; UV for passwordless;
the policy's answers; every act audited."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from client.api import totp_code as totp_at
from server.audit import AuditLog
from server.auth.passkeys import (
    CHALLENGE_TTL_S,
    PASSWORDLESS,
    REGISTER,
    SECOND_FACTOR,
    PasskeyRefused,
    PasskeyService,
)
from server.auth.services import AuthServices
from server.clock import ManualClock
from server.config import Settings, load_settings
from server.errors import ConfigError, Conflict, Gone
from server.store.base import Store
from tests.helpers.auth_helpers import create_staff
from tests.helpers.passkey_authenticator import BE, BS, UP, UV, SoftAuthenticator

ORIGIN = "https://clinic.example"
PASSWORD = "violet kestrel above dunes"


@pytest.fixture
def pk_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, public_url=ORIGIN)


async def _audit(store: Store) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in await store.audit_records()]


async def _registered(
    service: PasskeyService, account_id: str, *, flags: int = UP | UV,
) -> tuple[SoftAuthenticator, str]:
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id="clinic.example")
    ceremony = await service.registration_options(purpose=REGISTER, bound_to="sess", account_id=account_id,
                                                  user_name="dr@example.test", display_name="Dr")
    assert ceremony.options["rp"]["id"] == "clinic.example"
    assert ceremony.options["authenticatorSelection"]["userVerification"] == "required"
    new = await service.verify_registration(ceremony.ceremony_id, authenticator.register(ceremony.options, flags=flags),
                                            purpose=REGISTER, bound_to="sess", name="  USB   key ")
    passkey = await service.add(new, actor=account_id)
    assert passkey.name == "USB key" and passkey.transports == ("usb",)
    return authenticator, passkey.id


async def _assert(service: PasskeyService, authenticator: SoftAuthenticator, account_id: str | None = "acc_x",
                  *, purpose: str = SECOND_FACTOR, **kw: Any) -> Any:
    ceremony = await service.authentication_options(purpose=purpose, bound_to="b", account_id=account_id)
    return await service.verify_assertion(ceremony.ceremony_id, authenticator.assert_(ceremony.options, **kw),
                                          purpose=purpose, bound_to="b")


async def test_counter_must_grow_and_a_regression_is_refused_and_audited(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    service = PasskeyService(store, clock, pk_settings, AuditLog(store, clock))
    authenticator, _ = await _registered(service, "acc_x")
    used = await _assert(service, authenticator, counter=5)
    assert used.sign_count == 5 and used.last_used_at == clock.now()
    with pytest.raises(PasskeyRefused):
        await _assert(service, authenticator, counter=5)  # a clone would repeat or go back
    assert (await service.records.for_account("acc_x"))[0].sign_count == 5
    outcomes = [e["outcome"] for e in await _audit(store) if e["action"] == "passkey.refused"]
    assert outcomes == ["second_factor_counter"]
    assert (await _assert(service, authenticator, counter=6)).sign_count == 6


async def test_challenge_is_single_use_bound_and_short_lived(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    service = PasskeyService(store, clock, pk_settings, AuditLog(store, clock))
    authenticator, _ = await _registered(service, "acc_x")
    ceremony = await service.authentication_options(purpose=SECOND_FACTOR, bound_to="b", account_id="acc_x")
    answer = authenticator.assert_(ceremony.options)
    with pytest.raises(Gone):  # bound to another session: refused, and the challenge is spent
        await service.verify_assertion(ceremony.ceremony_id, answer, purpose=SECOND_FACTOR, bound_to="other")
    with pytest.raises(Gone):
        await service.verify_assertion(ceremony.ceremony_id, answer, purpose=SECOND_FACTOR, bound_to="b")
    ceremony = await service.authentication_options(purpose=SECOND_FACTOR, bound_to="b", account_id="acc_x")
    with pytest.raises(Gone):  # another purpose
        await service.verify_assertion(ceremony.ceremony_id, authenticator.assert_(ceremony.options),
                                       purpose=PASSWORDLESS, bound_to="b")
    ceremony = await service.authentication_options(purpose=SECOND_FACTOR, bound_to="b", account_id="acc_x")
    clock.advance(CHALLENGE_TTL_S + 1)
    with pytest.raises(Gone):
        await service.verify_assertion(ceremony.ceremony_id, authenticator.assert_(ceremony.options),
                                       purpose=SECOND_FACTOR, bound_to="b")


async def test_origin_rp_id_and_user_verification(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    service = PasskeyService(store, clock, pk_settings, AuditLog(store, clock))
    authenticator, _ = await _registered(service, "acc_x")
    with pytest.raises(PasskeyRefused):
        await _assert(service, authenticator, origin="https://clinic.example.evil.test")
    with pytest.raises(PasskeyRefused):
        await _assert(service, authenticator, rp_id="evil.test")
    with pytest.raises(PasskeyRefused):  # passwordless needs user verification
        await _assert(service, authenticator, None, purpose=PASSWORDLESS, flags=UP)
    assert (await _assert(service, authenticator, purpose=SECOND_FACTOR, flags=UP)).account_id == "acc_x"
    assert (await _assert(service, authenticator, None, purpose=PASSWORDLESS)).account_id == "acc_x"
    with pytest.raises(PasskeyRefused):  # someone else's passkey as this account's second factor
        await _assert(service, authenticator, "acc_other")
    outcomes = [e["outcome"] for e in await _audit(store) if e["action"] == "passkey.refused"]
    assert outcomes == ["second_factor_wrong_origin", "second_factor_wrong_rp_id",
                        "passwordless_no_user_verificatio", "second_factor_unknown_credential"]


async def test_backup_flags(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    service = PasskeyService(store, clock, pk_settings, AuditLog(store, clock))
    synced, _ = await _registered(service, "acc_x", flags=UP | UV | BE | BS)
    record = (await service.records.for_account("acc_x"))[0]
    assert record.backup_eligible and record.backed_up
    assert not (await _assert(service, synced, flags=UP | UV | BE)).backed_up  # BS may change
    with pytest.raises(PasskeyRefused):  # BE may not
        await _assert(service, synced, flags=UP | UV)
    device, _ = await _registered(service, "acc_y")
    with pytest.raises(PasskeyRefused):  # BS without BE is invalid
        await _assert(service, device, "acc_y", flags=UP | UV | BS)
    outcomes = [e["outcome"] for e in await _audit(store) if e["action"] == "passkey.refused"]
    assert outcomes[0].startswith("second_factor_backup")


async def test_registration_refusals(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    service = PasskeyService(store, clock, pk_settings, AuditLog(store, clock))
    authenticator, _ = await _registered(service, "acc_x")
    ceremony = await service.registration_options(purpose=REGISTER, bound_to="s", account_id="acc_x",
                                                  user_name="u", display_name="d")
    assert [c["id"] for c in ceremony.options["excludeCredentials"]] == [authenticator.register(
        ceremony.options)["id"]]
    with pytest.raises(Conflict):  # the same credential twice
        await service.verify_registration(ceremony.ceremony_id, authenticator.register(ceremony.options),
                                          purpose=REGISTER, bound_to="s", name="again")
    other = SoftAuthenticator(origin="https://evil.test", rp_id="clinic.example")
    ceremony = await service.registration_options(purpose=REGISTER, bound_to="s", account_id="acc_x",
                                                  user_name="u", display_name="d")
    with pytest.raises(Exception) as caught:
        await service.verify_registration(ceremony.ceremony_id, other.register(ceremony.options),
                                          purpose=REGISTER, bound_to="s", name="phished")
    assert getattr(caught.value, "code", "") == "passkey_refused"
    ceremony = await service.registration_options(purpose=REGISTER, bound_to="s", account_id="acc_x",
                                                  user_name="u", display_name="d")
    with pytest.raises(Exception) as caught:  # user verification is required to register
        await service.verify_registration(ceremony.ceremony_id, SoftAuthenticator(ORIGIN, "clinic.example")
                                          .register(ceremony.options, flags=UP), purpose=REGISTER,
                                          bound_to="s", name="no uv")
    assert getattr(caught.value, "code", "") == "passkey_refused"
    assert len(await service.records.for_account("acc_x")) == 1


async def test_policy_passkey_only_refuses_totp_once_a_passkey_exists(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    settings = dataclasses.replace(pk_settings, second_factor="passkey")
    account_id, secret = await create_staff(store, clock, settings, email="dr@example.test", role="doctor",
                                            password=PASSWORD)
    auth = AuthServices.build(store, clock, settings, AuditLog(store, clock))
    account = await auth.accounts.require(account_id)
    assert await auth.passkey_setup_required(account)  # no passkey yet: TOTP once, then held
    first = await auth.login.password_step("dr@example.test", PASSWORD, "10.0.0.1")
    await auth.login.mfa_step(first.token, "10.0.0.1", code=totp_at(secret, clock.now()))
    await _registered(auth.passkeys, account_id)
    assert not await auth.passkey_setup_required(account)
    clock.advance(30)
    second = await auth.login.password_step("dr@example.test", PASSWORD, "10.0.0.1")
    with pytest.raises(Exception) as caught:
        await auth.login.mfa_step(second.token, "10.0.0.1", code=totp_at(secret, clock.now()))
    assert getattr(caught.value, "code", "") == "invalid_credentials"


async def test_required_for_admins_only(store: Store, pk_settings: Settings) -> None:
    clock = ManualClock()
    settings = dataclasses.replace(pk_settings, passkeys_required_for="admins")
    auth = AuthServices.build(store, clock, settings, AuditLog(store, clock))
    admin_id, _ = await create_staff(store, clock, settings, email="a@example.test", role="admin", password=PASSWORD)
    doctor_id, _ = await create_staff(store, clock, settings, email="d@example.test", role="doctor",
                                      password=PASSWORD)
    assert await auth.passkey_setup_required(await auth.accounts.require(admin_id))
    assert not await auth.passkey_setup_required(await auth.accounts.require(doctor_id))


def test_policy_settings_are_validated() -> None:
    env = {"TELECONSULT_SECOND_FACTOR": "sms"}
    with pytest.raises(ConfigError, match="SECOND_FACTOR"):
        load_settings(environ=env)
    with pytest.raises(ConfigError, match="PASSKEYS_REQUIRED_FOR"):
        load_settings(environ={"TELECONSULT_SECOND_FACTOR": "totp", "TELECONSULT_PASSKEYS_REQUIRED_FOR": "admins"})
    with pytest.raises(ConfigError, match="PASSWORD_MIN_LENGTH"):
        load_settings(environ={"TELECONSULT_PASSWORD_MIN_LENGTH": "6"})
    s = load_settings(environ={"TELECONSULT_PUBLIC_URL": "https://tc.clinic.example:8443/",
                               "TELECONSULT_PASSWORD_MIN_LENGTH": "14"})
    assert (s.webauthn_rp_id, s.webauthn_origin, s.password_min_length) == (
        "tc.clinic.example", "https://tc.clinic.example:8443", 14)


async def test_first_run_setup_and_enrolment_with_a_passkey_instead_of_totp(
    store: Store, pk_settings: Settings,
) -> None:
    clock = ManualClock()
    auth = AuthServices.build(store, clock, pk_settings, AuditLog(store, clock))
    token = await auth.enrolment.issue_setup_link_if_needed()
    assert token is not None
    started = await auth.enrolment.start(token)
    ceremony = await auth.enrolment.passkey_options(started.enrolment_id, started.binding,
                                                    email="admin@clinic.example", display_name="Ada Admin")
    authenticator = SoftAuthenticator(origin=ORIGIN, rp_id="clinic.example")
    answer = authenticator.register(ceremony.options)
    with pytest.raises(Exception) as caught:  # the password policy holds here too (built from the name)
        await auth.enrolment.finish_with_passkey(
            started.enrolment_id, started.binding, password="AdaAdmin2026!", ceremony_id=ceremony.ceremony_id,
            credential=answer, name="Desk", email="admin@clinic.example", display_name="Ada Admin")
    assert getattr(caught.value, "code", "") == "password_personal"
    ceremony = await auth.enrolment.passkey_options(started.enrolment_id, started.binding)
    answer = authenticator.register(ceremony.options)
    done = await auth.enrolment.finish_with_passkey(
        started.enrolment_id, started.binding, password=PASSWORD, ceremony_id=ceremony.ceremony_id,
        credential=answer, name="Desk", email="admin@clinic.example", display_name="Ada Admin")
    account = done.account
    assert account.role == "admin" and account.active and account.totp_sealed is None
    assert len(done.recovery_codes) == 10
    [passkey] = await auth.passkeys.records.for_account(account.id)
    assert passkey.name == "Desk"
    with pytest.raises(Gone):  # the link was consumed
        await auth.enrolment.start(token)
    # and that admin signs in: password, then the passkey (no TOTP offered or accepted)
    mfa = await auth.login.password_step("admin@clinic.example", PASSWORD, "10.0.0.2")
    ceremony = await auth.passkey_login.second_factor_options(mfa.token)
    signed_in = await auth.passkey_login.second_factor_finish(
        mfa.token, "10.0.0.2", ceremony.ceremony_id, authenticator.assert_(ceremony.options))
    assert signed_in.account.id == account.id and signed_in.session.stage == "auth"
    actions = [(e["action"], e["outcome"]) for e in await _audit(store)]
    assert ("account.enrolled", "setup_passkey") in actions and ("auth.login", "ok_passkey") in actions


async def test_refused_second_factor_passkeys_end_the_pre_mfa_step_after_five(
    store: Store, pk_settings: Settings,
) -> None:
    clock = ManualClock()
    auth = AuthServices.build(store, clock, pk_settings, AuditLog(store, clock))
    account_id, _ = await create_staff(store, clock, pk_settings, email="dr@example.test", role="doctor",
                                       password=PASSWORD)
    authenticator, _ = await _registered(auth.passkeys, account_id)
    mfa = await auth.login.password_step("dr@example.test", PASSWORD, "10.0.0.3")
    for _ in range(5):
        ceremony = await auth.passkey_login.second_factor_options(mfa.token)
        with pytest.raises(PasskeyRefused):
            await auth.passkey_login.second_factor_finish(
                mfa.token, "10.0.0.3", ceremony.ceremony_id,
                authenticator.assert_(ceremony.options, origin="https://evil.test"))
    with pytest.raises(Exception) as caught:
        await auth.passkey_login.second_factor_options(mfa.token)
    assert getattr(caught.value, "code", "") == "login_expired"
