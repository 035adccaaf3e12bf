"""A Python reading of the E2EE protocol v1 (docs/e2ee.md), written from the spec for checking
the browser's implementation (web/js/e2ee/) byte for byte: lp(), the link id and k_auth, the
announce/vouch authenticators, the pairwise key and `key` messages, the frame format, the safety
code and recording-key escrow. Test-only; the Python participant has its own implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAGIC = 0xE1


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def lp(*parts: bytes | str) -> bytes:
    out = b""
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out += struct.pack(">H", len(data)) + data
    return out


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def link_id(s: bytes) -> bytes:
    return hkdf(s, b"", b"tc-e2ee/v1/link-id", 8)


def k_auth(s: bytes, cid: str) -> bytes:
    return hkdf(s, cid.encode(), b"tc-e2ee/v1/auth", 32)


def announce_auth(key: bytes, cid: str, pid: str, role: str, pub: bytes) -> bytes:
    return hmac.new(key, lp("tc-e2ee/v1/announce", cid, pid, role, pub), hashlib.sha256).digest()


def vouch_auth(key: bytes, cid: str, pid: str, role: str, pub: bytes) -> bytes:
    return hmac.new(key, lp("tc-e2ee/v1/vouch", cid, pid, role, pub), hashlib.sha256).digest()


def raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def pair_key(own: ec.EllipticCurvePrivateKey, peer_pub: bytes, cid: str, a: str, b: str) -> bytes:
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_pub)
    z = own.exchange(ec.ECDH(), peer)
    return hkdf(z, cid.encode(), lp("tc-e2ee/v1/pair", min(a, b), max(a, b)), 32)


def key_aad(cid: str, sender: str, recipient: str, key_id: int) -> bytes:
    return lp("tc-e2ee/v1/key", cid, sender, recipient, struct.pack(">I", key_id))


def clear_length(kind: str, data: bytes) -> int:
    if not data:
        return 0
    n = 1 if kind == "audio" else (10 if data[0] & 1 == 0 else 3)
    return min(n, len(data))


def encrypt_frame(key: bytes, key_id: int, iv: bytes, kind: str, data: bytes) -> bytes:
    n = clear_length(kind, data)
    clear = data[:n]
    tail = struct.pack(">I", key_id) + bytes([MAGIC])
    return clear + AESGCM(key).encrypt(iv, data[n:], clear + tail) + iv + tail


def decrypt_frame(key: bytes, kind: str, frame: bytes) -> tuple[int, bytes, bytes]:
    """-> (key_id, iv, plaintext frame); raises on a malformed or forged frame."""
    if len(frame) < 33 or frame[-1] != MAGIC:
        raise ValueError("not an E2EE frame")
    key_id = struct.unpack(">I", frame[-5:-1])[0]
    iv = frame[-17:-5]
    body = len(frame) - 33
    n = min(1 if kind == "audio" else (10 if frame[0] & 1 == 0 else 3), body) if body else 0
    clear = frame[:n]
    rest = AESGCM(key).decrypt(iv, frame[n:-17], clear + frame[-5:])
    return key_id, iv, clear + rest


def safety_code(cid: str, entries: list[tuple[str, bytes]]) -> str:
    parts: list[bytes | str] = ["tc-e2ee/v1/safety", cid]
    for pid, pub in sorted(entries):
        parts += [pid, pub]
    digits = str(int.from_bytes(hashlib.sha256(lp(*parts)).digest()[:6], "big") % 10**12).zfill(12)
    return " ".join(digits[i:i + 3] for i in range(0, 12, 3))


def open_escrow(clinic: ec.EllipticCurvePrivateKey, cid: str, message: dict[str, object]) -> bytes:
    sender, key_id = str(message["sender"]), int(str(message["key_id"]))
    epk = unb64(str(message["epk"]))
    z = clinic.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), epk))
    info = lp("tc-e2ee/v1/escrow", cid, sender, struct.pack(">I", key_id))
    k = hkdf(z, epk, info, 32)
    return AESGCM(k).decrypt(unb64(str(message["iv"])), unb64(str(message["ct"])), info)


def fingerprint(pub: bytes) -> str:
    return hashlib.sha256(pub).hexdigest()[:16]
