"""The password policy (NIST SP 800-63B §3.1.1.2): length, and nothing guessable.

- at least `Settings.password_min_length` characters (12 by default), at most 256; every
  character allowed, no composition rules (no "one digit, one symbol");
- refused when it is a common or breached password — the 30 000-entry list of passwords from
  breaches that the `zxcvbn` package ships (offline: no network call, nothing typed by hand),
  including its l33t-speak and reversed variants;
- refused when it is mostly built from the person's own e-mail address or name;
- refused when zxcvbn estimates fewer than 10^10 guesses (repeats, sequences, keyboard walks,
  a dictionary word with a digit).

`assess()` also gives the 0–4 score the strength meter shows. Each refusal is an InvalidInput
with its own code (password_too_short, password_too_long, password_common, password_personal,
password_guessable) so the page can say why in the person's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zxcvbn import zxcvbn

from ..errors import InvalidInput

MAX_PASSWORD_LENGTH = 256
ZXCVBN_MAX_INPUT = 72  # zxcvbn refuses longer input; the first 72 characters decide
MIN_GUESSES_LOG10 = 10.0
PERSONAL_SHARE = 0.5  # refused when words from the e-mail or name cover half the password
MIN_PERSONAL_WORD = 3

MESSAGES = {
    "password_too_short": "The password must have at least {n} characters.",
    "password_too_long": "The password is too long (256 characters at most).",
    "password_common": "This password is on a list of common or breached passwords; choose another.",
    "password_personal": "This password is built from your e-mail address or name; choose another.",
    "password_guessable": "This password follows an easy pattern; a few unrelated words are stronger.",
}


@dataclass(frozen=True)
class PasswordAssessment:
    ok: bool
    code: str | None  # the refusal's error code, None when accepted
    score: int  # 0 (very weak) … 4 (strong), zxcvbn's scale

    def error(self, min_length: int) -> InvalidInput:
        code = self.code or "password_guessable"
        return InvalidInput(MESSAGES[code].format(n=min_length), code=code)


def personal_words(email: str | None, display_name: str | None) -> list[str]:
    """The parts of an e-mail address and a name that a password must not be built from."""
    words: list[str] = []
    for value in (email, display_name):
        if not isinstance(value, str) or not value.strip():
            continue
        folded = value.strip().lower()
        words.append(folded)
        words.extend(w for w in re.split(r"[^\w]+", folded) if len(w) >= MIN_PERSONAL_WORD)
    return list(dict.fromkeys(words))


def personal_share(password: str, words: list[str]) -> float:
    """The share of the password's characters that lie inside one of `words` (case-folded)."""
    folded = password.lower()
    covered = [False] * len(folded)
    for word in words:
        start = folded.find(word)
        while start >= 0:
            covered[start:start + len(word)] = [True] * len(word)
            start = folded.find(word, start + 1)
    return sum(covered) / max(1, len(folded))


def _covered_by(sequence: list[dict[str, Any]], dictionary: str) -> int:
    return sum(len(m["token"]) for m in sequence
               if m.get("pattern") == "dictionary" and m.get("dictionary_name") == dictionary)


class PasswordPolicy:
    def __init__(self, min_length: int) -> None:
        self.min_length = min_length

    def assess(self, password: str, *, email: str | None = None,
               display_name: str | None = None) -> PasswordAssessment:
        if not isinstance(password, str) or not password:
            return PasswordAssessment(False, "password_too_short", 0)
        if len(password) > MAX_PASSWORD_LENGTH:
            return PasswordAssessment(False, "password_too_long", 0)
        sample = password[:ZXCVBN_MAX_INPUT]
        personal = personal_words(email, display_name)
        result = zxcvbn(sample, user_inputs=personal)
        score = int(result["score"])
        sequence: list[dict[str, Any]] = list(result["sequence"])
        if len(password) < self.min_length:
            return PasswordAssessment(False, "password_too_short", min(score, 1))
        if len(sequence) == 1 and _covered_by(sequence, "passwords") == len(sample):
            return PasswordAssessment(False, "password_common", 0)
        if personal_share(password, personal) >= PERSONAL_SHARE:
            return PasswordAssessment(False, "password_personal", min(score, 1))
        if float(result["guesses_log10"]) < MIN_GUESSES_LOG10:
            return PasswordAssessment(False, "password_guessable", min(score, 2))
        return PasswordAssessment(True, None, max(score, 3))

    def check(self, password: str, *, email: str | None = None, display_name: str | None = None) -> None:
        """Raise InvalidInput (with the refusal's code) unless the password is acceptable."""
        verdict = self.assess(password, email=email, display_name=display_name)
        if not verdict.ok:
            raise verdict.error(self.min_length)
