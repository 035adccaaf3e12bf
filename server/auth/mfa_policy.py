"""The clinic's sign-in policy (Settings.second_factor, passkeys_required_for,
passkey_passwordless), as answers to the questions login and the pages ask. Layer 3.

- second_factor "totp": only TOTP codes after the password (passkeys cannot be added);
  "passkey": only passkeys — an account with none yet may use its TOTP code once more, and is
  then held (see `passkey_setup_required`) until it registers one; "either": both.
- passkeys_required_for "admins" / "everyone": those accounts are held after sign-in until they
  have a passkey; "none": nobody is.
- passkey_passwordless: a passkey with user verification signs in without the password (only
  where passkeys are accepted).
"""

from __future__ import annotations

from ..config import Settings


def passkeys_enabled(settings: Settings) -> bool:
    return settings.second_factor != "totp"


def passwordless_enabled(settings: Settings) -> bool:
    return passkeys_enabled(settings) and settings.passkey_passwordless


def totp_accepted(settings: Settings, *, has_passkey: bool) -> bool:
    return settings.second_factor != "passkey" or not has_passkey


def passkey_required(settings: Settings, role: str) -> bool:
    if settings.second_factor == "passkey":
        return True
    return settings.passkeys_required_for == "everyone" or (
        settings.passkeys_required_for == "admins" and role == "admin")


def passkey_setup_required(settings: Settings, role: str, *, has_passkey: bool) -> bool:
    """Signed in, but must register a passkey before anything else."""
    return passkey_required(settings, role) and not has_passkey


def second_factors(settings: Settings, *, has_passkey: bool, has_totp: bool) -> list[str]:
    """What the login page offers after the password, in order (recovery codes always work)."""
    factors: list[str] = []
    if passkeys_enabled(settings) and has_passkey:
        factors.append("passkey")
    if has_totp and totp_accepted(settings, has_passkey=has_passkey):
        factors.append("totp")
    return factors
