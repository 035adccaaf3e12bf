"""The password policy (NIST SP 800-63B): length from the setting, the breached-password list
zxcvbn ships, nothing built from the person's e-mail or name, no composition rules."""

from __future__ import annotations

import pytest
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from server.auth.password_policy import PasswordPolicy
from server.errors import InvalidInput

EMAIL = "jeanne.martin@clinic.example"
NAME = "Jeanne Martin"


def _code(policy: PasswordPolicy, password: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        policy.check(password, email=EMAIL, display_name=NAME)
    return caught.value.code


def test_every_long_enough_entry_of_the_shipped_list_is_refused_as_common() -> None:
    policy = PasswordPolicy(12)
    listed = [w for w in FREQUENCY_LISTS["passwords"] if len(w) >= 12]
    assert len(listed) > 100  # the package's own list, not ours
    for word in listed:
        assert not policy.assess(word).ok, word
    assert _code(policy, "password1234") == "password_common"
    assert _code(policy, "1qaz2wsx3edc") == "password_common"


@pytest.mark.parametrize("password", ["jeanne.martin@clinic.example", "JeanneMartin2026", "martinjeanne!!"])
def test_built_from_email_or_name_is_refused(password: str) -> None:
    assert _code(PasswordPolicy(12), password) == "password_personal"


@pytest.mark.parametrize("password", ["aaaaaaaaaaaaaaa", "abababababababab", "qwertyuiopasdfgh", "p@ssw0rd1234"])
def test_patterns_are_refused_as_guessable(password: str) -> None:
    assert _code(PasswordPolicy(12), password) in ("password_guessable", "password_common")


def test_length_comes_from_the_setting_and_no_composition_rule_applies() -> None:
    assert _code(PasswordPolicy(12), "violet dune") == "password_too_short"
    assert _code(PasswordPolicy(16), "kestrel dunes 7") == "password_too_short"
    assert _code(PasswordPolicy(12), "x" * 257) == "password_too_long"
    # lower-case words only, no digit, no symbol: accepted (NIST: no composition rules)
    for passphrase in ("violet kestrel above dunes", "correct horse battery staple",
                       "the orchard behind the old mill floods every march"):
        verdict = PasswordPolicy(12).assess(passphrase, email=EMAIL, display_name=NAME)
        assert verdict.ok and verdict.score >= 3, passphrase
    # Unicode counts as characters, not bytes
    assert PasswordPolicy(12).assess("grenouille été brûlante").ok


def test_message_names_the_minimum() -> None:
    with pytest.raises(InvalidInput) as caught:
        PasswordPolicy(14).check("tiny")
    assert "14" in caught.value.message
