"""The byte formats of end-to-end encryption, protocol v1 (docs/e2ee.md), layer 3, pure.

Shared by the Python participant (client/e2ee.py: it encrypts and decrypts frames, wraps keys)
and by the clinic-side `teleconsult recordings open` (it unwraps escrowed media keys with the
clinic's private recording key and decrypts recorded frames). The server itself never calls
the decrypting half: it holds no media key and no recording private key.

- `lp(*parts)`: each part as u16 big-endian length + bytes (strings UTF-8): every HMAC input,
  HKDF info and AEAD associated data, so fields cannot run into each other.
- Frame: `clear || ciphertext||tag(16) || iv(12) || key_id u32be || 0xE1`, clear = first
  n = min(len, N) bytes (VP8 keyframe N = 10, delta 3; Opus 1), aad = clear || key_id || 0xE1.
- Escrow: ephemeral P-256 ECDH to the clinic's recording public key, HKDF(salt = epk),
  AES-256-GCM of the 16-byte media key, aad = lp("tc-e2ee/v1/escrow", cid, sender, key_id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_mod
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FRAME_MAGIC = 0xE1
TAG_BYTES = 16
IV_BYTES = 12
TRAILER_BYTES = IV_BYTES + 4 + 1
OVERHEAD = TAG_BYTES + TRAILER_BYTES  # 33 bytes added to every frame
MEDIA_KEY_BYTES = 16
POINT_BYTES = 65
ESCROW_LABEL = "tc-e2ee/v1/escrow"


class FrameError(Exception):
    """A frame that cannot be decrypted; `reason` is "format", "no_key" or "auth"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- encodings -----------------------------------------------------------------------------

def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """base64url without padding; ValueError on anything else."""
    if not isinstance(text, str) or "=" in text:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64url") from None


def lp(*parts: str | bytes) -> bytes:
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def u32be(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac256(key: bytes, message: bytes) -> bytes:
    return hmac_mod.new(key, message, hashlib.sha256).digest()


def public_raw(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def public_from_raw(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 point (65 bytes, uncompressed); ValueError if it is not one."""
    if len(raw) != POINT_BYTES or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def ecdh(private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey) -> bytes:
    return private.exchange(ec.ECDH(), public)


def fingerprint(raw_point: bytes) -> str:
    """First 16 hex characters of SHA-256(raw point): how people name a recording key."""
    return hashlib.sha256(raw_point).hexdigest()[:16]


# -- frames --------------------------------------------------------------------------------

def clear_bytes(kind: str, first: int, length: int) -> int:
    """How many leading bytes stay clear: VP8 keyframe 10, delta 3, audio 1 (at most length)."""
    wanted = 1 if kind == "audio" else 10 if first & 1 == 0 else 3
    return min(length, wanted)


def frame_key_id(frame: bytes) -> int | None:
    """The key id of an E2EE frame, or None if the frame is not in the format."""
    if len(frame) < OVERHEAD or frame[-1] != FRAME_MAGIC:
        return None
    return int(struct.unpack(">I", frame[-5:-1])[0])


class FrameSealer:
    """Encrypts one sender's frames under one media key: a random 4-byte salt per key and a
    64-bit counter from 0, +1 per frame across all of the sender's tracks (IVs never repeat)."""

    def __init__(self, key_id: int, key: bytes, *, salt: bytes | None = None) -> None:
        if len(key) != MEDIA_KEY_BYTES or not 0 < key_id <= 0xFFFFFFFF:
            raise ValueError("a media key is 16 bytes with a nonzero u32 id")
        self.key_id = key_id
        self._aead = AESGCM(key)
        self._salt = os.urandom(4) if salt is None else salt  # fixed salt: test vectors only
        self._counter = 0
        self._suffix = u32be(key_id) + bytes([FRAME_MAGIC])

    def seal(self, kind: str, data: bytes) -> bytes:
        n = clear_bytes(kind, data[0], len(data)) if data else 0
        clear = data[:n]
        iv = self._salt + struct.pack(">Q", self._counter)
        self._counter += 1
        sealed = self._aead.encrypt(iv, data[n:], clear + self._suffix)
        return clear + sealed + iv + self._suffix


def open_frame(kind: str, frame: bytes, key: bytes) -> bytes:
    """Decrypt one frame with `key` (the key for the frame's key id). FrameError("auth")."""
    if len(frame) < OVERHEAD or frame[-1] != FRAME_MAGIC:
        raise FrameError("format")
    plain_len = len(frame) - OVERHEAD
    n = clear_bytes(kind, frame[0], plain_len) if plain_len else 0
    clear = frame[:n]
    iv = frame[-TRAILER_BYTES:-5]
    suffix = frame[-5:]
    try:
        rest = AESGCM(key).decrypt(iv, frame[n:-TRAILER_BYTES], clear + suffix)
    except InvalidTag:
        raise FrameError("auth") from None
    return clear + rest


# -- escrow to the clinic's recording key ----------------------------------------------------

def escrow_aad(cid: str, sender: str, key_id: int) -> bytes:
    return lp(ESCROW_LABEL, cid, sender, u32be(key_id))


@dataclass(frozen=True)
class EscrowWrap:
    sender: str
    key_id: int
    epk: bytes
    iv: bytes
    ct: bytes


def escrow_wrap(clinic_pub: bytes, cid: str, sender: str, key_id: int, media_key: bytes) -> EscrowWrap:
    """What the host's client sends in a `recording-key` message."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    epk = public_raw(ephemeral.public_key())
    z = ecdh(ephemeral, public_from_raw(clinic_pub))
    aad = escrow_aad(cid, sender, key_id)
    k = hkdf(z, epk, aad, 32)
    iv = os.urandom(IV_BYTES)
    return EscrowWrap(sender, key_id, epk, iv, AESGCM(k).encrypt(iv, media_key, aad))


def escrow_unwrap(private: ec.EllipticCurvePrivateKey, cid: str, wrap: EscrowWrap) -> bytes:
    """The media key, with the clinic's private recording key. FrameError("auth") if wrong."""
    try:
        z = ecdh(private, public_from_raw(wrap.epk))
        aad = escrow_aad(cid, wrap.sender, wrap.key_id)
        key = AESGCM(hkdf(z, wrap.epk, aad, 32)).decrypt(wrap.iv, wrap.ct, aad)
    except (InvalidTag, ValueError):
        raise FrameError("auth") from None
    if len(key) != MEDIA_KEY_BYTES:
        raise FrameError("auth")
    return key
