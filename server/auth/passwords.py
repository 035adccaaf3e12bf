"""Password hashing (Argon2id, DESIGN §4) and the password policy.

Parameters are OWASP's first recommendation (m=19 MiB, t=2, p=1); measured here at ~65 ms per
hash or verify on one core. Hashing runs in a worker thread (asyncio.to_thread) so the event
loop never waits on it. The encoded form is PHC (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so
parameters can be raised later and old hashes still verify.
"""

from __future__ import annotations

import asyncio
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ..errors import InvalidInput

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1
HASH_LENGTH = 32
SALT_LENGTH = 16
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256

# A small built-in list of passwords that meet the length rule but are guessed first.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012", "1234567890123", "12345678901234", "123456789abc", "1q2w3e4r5t6y",
        "qwertyuiopas", "qwertyuiop123", "qwerty123456", "1qaz2wsx3edc", "passwordpassword",
        "password1234", "password12345", "password123456", "password123!", "p@ssw0rd1234",
        "iloveyou1234", "letmein12345", "welcome12345", "administrator", "admin1234567",
        "changeme1234", "motdepasse123", "motdepasse1234", "azertyuiop123", "azertyuiopqs",
        "aaaaaaaaaaaa", "abcdefghijkl", "abc123456789", "trustno1trustno1", "football1234",
        "monkey123456", "dragon123456", "sunshine1234", "princess1234", "baseball1234",
        "superman1234", "000000000000", "111111111111", "123123123123", "qwertyqwerty",
        "teleconsult1", "teleconsult123", "doctor123456", "docteur12345", "medecin12345",
        "hospital1234", "hopital123456", "correcthorsebatterystaple",
    }
)


def check_password_policy(password: str) -> None:
    """Raise InvalidInput (code weak_password) when the password is too short or too common."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.", code="weak_password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("The password is too long.", code="weak_password")
    folded = password.lower()
    if folded in COMMON_PASSWORDS or len(set(folded)) <= 2:
        raise InvalidInput("This password is too common; choose another.", code="weak_password")


def _hash_sync(password: str) -> str:
    kdf = Argon2id(
        salt=os.urandom(SALT_LENGTH),
        length=HASH_LENGTH,
        iterations=ITERATIONS,
        lanes=LANES,
        memory_cost=MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password.encode("utf-8"))


def _verify_sync(password: str, encoded: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), encoded)
    except (InvalidKey, ValueError):
        return False
    return True


# Verified against when the account is unknown or has no password, so that every login costs
# one Argon2id verify and timing does not tell whether an e-mail exists.
_DUMMY_HASH = _hash_sync("dummy password, never valid " + os.urandom(8).hex())


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash_sync, password)


async def verify_password(password: str, encoded: str | None) -> bool:
    """Constant work whether or not `encoded` exists (a dummy hash is verified instead)."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        password = ""
    if encoded is None:
        await asyncio.to_thread(_verify_sync, password, _DUMMY_HASH)
        return False
    return await asyncio.to_thread(_verify_sync, password, encoded)
