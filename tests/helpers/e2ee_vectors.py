"""Deterministic E2EE protocol v1 test vectors (docs/e2ee.md), computed by the Python
implementation: `python -m tests.helpers.e2ee_vectors > tests/e2ee_vectors.json` regenerates them, and
tests/test_e2ee_format.py checks the implementation still produces them. The browser side can
check its WebCrypto code against the same JSON (fixed private keys, salts and IVs)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.e2ee import (
    announce_auth,
    auth_key,
    key_aad,
    link_id,
    pair_key,
    safety_code,
    vouch_auth,
)
from server.recording.e2ee_format import (
    FrameSealer,
    b64e,
    ecdh,
    escrow_aad,
    hkdf,
    public_raw,
)

CID = "c_0123456789abcdef0123"
SECRET = bytes(range(16))
HOST_SCALAR = 0x1111111111111111111111111111111111111111111111111111111111111111
PATIENT_SCALAR = 0x2222222222222222222222222222222222222222222222222222222222222222
CLINIC_SCALAR = 0x3333333333333333333333333333333333333333333333333333333333333333
EPHEMERAL_SCALAR = 0x4444444444444444444444444444444444444444444444444444444444444444
PATIENT_PID = "p_0011223344556677"
MEDIA_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY_ID = 0x01020304
KEY_IV = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
SALT = bytes.fromhex("b0b1b2b3")
ESCROW_IV = bytes.fromhex("c0c1c2c3c4c5c6c7c8c9cacb")
VP8_KEYFRAME = bytes.fromhex("50420a9d012a8002e001") + bytes(range(40))
VP8_DELTA = bytes.fromhex("b10200") + bytes(range(20))
OPUS = bytes.fromhex("fc") + bytes(range(30))


def private(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP256R1())


def vectors() -> dict[str, Any]:
    host, patient, clinic, eph = (private(s) for s in (HOST_SCALAR, PATIENT_SCALAR, CLINIC_SCALAR,
                                                       EPHEMERAL_SCALAR))
    host_pub, patient_pub = public_raw(host.public_key()), public_raw(patient.public_key())
    clinic_pub, epk = public_raw(clinic.public_key()), public_raw(eph.public_key())
    k_auth = auth_key(SECRET, CID)
    z = ecdh(host, patient.public_key())
    k_pair = pair_key(z, CID, "host", PATIENT_PID)
    key_ct = AESGCM(k_pair).encrypt(KEY_IV, MEDIA_KEY, key_aad(CID, "host", PATIENT_PID, KEY_ID))
    sealer = FrameSealer(KEY_ID, MEDIA_KEY, salt=SALT)
    frames = [("video", VP8_KEYFRAME), ("video", VP8_DELTA), ("audio", OPUS)]
    sealed = [sealer.seal(kind, data) for kind, data in frames]  # counters 0, 1, 2
    aad = escrow_aad(CID, "host", KEY_ID)
    k_escrow = hkdf(ecdh(eph, clinic.public_key()), epk, aad, 32)
    escrow_ct = AESGCM(k_escrow).encrypt(ESCROW_IV, MEDIA_KEY, aad)
    return {
        "cid": CID, "link_secret": b64e(SECRET), "host_pid": "host", "patient_pid": PATIENT_PID,
        "host_private_scalar_hex": f"{HOST_SCALAR:064x}", "host_pub": b64e(host_pub),
        "patient_private_scalar_hex": f"{PATIENT_SCALAR:064x}", "patient_pub": b64e(patient_pub),
        "link_id": b64e(link_id(SECRET)), "k_auth": b64e(k_auth),
        "patient_announce_auth": b64e(announce_auth(k_auth, CID, PATIENT_PID, "patient", patient_pub)),
        "host_announce_auth": b64e(announce_auth(k_auth, CID, "host", "host", host_pub)),
        "vouch_patient_auth": b64e(vouch_auth(k_auth, CID, PATIENT_PID, "patient", patient_pub)),
        "ecdh_z": b64e(z), "k_pair": b64e(k_pair),
        "media_key": b64e(MEDIA_KEY), "key_id": KEY_ID, "key_iv": b64e(KEY_IV), "key_ct": b64e(key_ct),
        "frame_salt": b64e(SALT),
        "frames": [{"kind": kind, "plain": b64e(data), "sealed": b64e(out), "counter": i}
                   for i, ((kind, data), out) in enumerate(zip(frames, sealed, strict=True))],
        "safety_code": safety_code(CID, {"host": host_pub, PATIENT_PID: patient_pub}),
        "clinic_private_scalar_hex": f"{CLINIC_SCALAR:064x}", "clinic_pub": b64e(clinic_pub),
        "escrow_ephemeral_scalar_hex": f"{EPHEMERAL_SCALAR:064x}", "escrow_epk": b64e(epk),
        "escrow_iv": b64e(ESCROW_IV), "escrow_ct": b64e(escrow_ct),
    }


if __name__ == "__main__":
    print(json.dumps(vectors(), indent=2, sort_keys=True))
