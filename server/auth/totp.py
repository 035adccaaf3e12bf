"""Second factor: RFC 6238 TOTP (30 s, 6 digits, ±1 step, each code once) and recovery codes.

A code is accepted at most once per account: the first acceptance claims (account, time-step)
in the store atomically, so a replay — even a concurrent one on another node — is refused.
Recovery codes are 80-bit random, stored as one-time tokens keyed by their SHA-256, consumed
atomically.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets

import pyotp
import segno

from ..clock import Clock
from ..store.base import Store

STEP_S = 30
DIGITS = 6
VALID_WINDOW = 1
ISSUER = "teleconsult"
CLAIM_KIND = "totp_used"
CLAIM_TTL_S = STEP_S * (2 * VALID_WINDOW + 2)
RECOVERY_KIND = "recovery_code"
RECOVERY_COUNT = 10
RECOVERY_TTL_S = 10 * 365 * 24 * 3600.0
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_totp_secret() -> str:
    """160-bit base32 secret (RFC 4226 recommends ≥ 128 bits)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG (no external request, no script)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True)
    return out.getvalue().decode("utf-8")


def _clean_code(code: str) -> str | None:
    if not isinstance(code, str):
        return None
    digits = code.replace(" ", "").replace("-", "")
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time-step within ±1 whose code equals `code` (constant-time compares), or None."""
    cleaned = _clean_code(code)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    current = int(now) // STEP_S
    found: int | None = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        expected = totp.generate_otp(step)
        # compare every candidate (no early exit), with a dummy when the input is malformed
        if hmac.compare_digest(expected.encode(), (cleaned or "x" * DIGITS).encode()) and cleaned:
            found = step
    return found


async def verify_totp(store: Store, clock: Clock, *, owner: str, secret: str, code: str) -> bool:
    """True once per (owner, time-step): the code is right and was never accepted before."""
    step = matching_step(secret, code, clock.now())
    if step is None:
        return False
    return await store.claim(CLAIM_KIND, f"{owner}:{step}", CLAIM_TTL_S)


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))  # 16 × log2(31) ≈ 79 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def recovery_key(account_id: str, code: str) -> str:
    normalised = "".join(ch for ch in code.lower() if ch.isalnum()) if isinstance(code, str) else ""
    digest = hashlib.sha256(b"teleconsult/recovery/" + normalised.encode("utf-8")).hexdigest()
    return f"{account_id}:{digest}"


async def issue_recovery_codes(store: Store, account_id: str, old_keys: tuple[str, ...]) -> tuple[
    list[str], tuple[str, ...]
]:
    """Invalidate the old codes and store 10 new ones; returns (codes shown once, their keys)."""
    for key in old_keys:
        await store.delete_token(RECOVERY_KIND, key)
    codes = [new_recovery_code() for _ in range(RECOVERY_COUNT)]
    keys = tuple(recovery_key(account_id, c) for c in codes)
    for key in keys:
        await store.put_token(RECOVERY_KIND, key, {"account_id": account_id}, RECOVERY_TTL_S)
    return codes, keys


async def use_recovery_code(store: Store, account_id: str, code: str) -> bool:
    """Consume the code atomically; True exactly once per issued code."""
    payload = await store.consume_token(RECOVERY_KIND, recovery_key(account_id, code))
    return payload is not None and hmac.compare_digest(
        str(payload.get("account_id", "")).encode(), account_id.encode()
    )

