"""Recording escrow under E2EE (docs/e2ee.md "Recording"), layer 3: the clinic's recording
public key, registered by an administrator, and the escrow records of each recording.

The host's client wraps every media key in use to the clinic's public key (`recording-key`
messages); the server stores those wraps, with their arrival time, beside the recording's
record (document `("recording-escrow", <recording id>)`). It cannot open them: the private key
stays offline with the clinic (`teleconsult keys recording-keypair`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..errors import InvalidInput
from ..store.base import DocumentStore
from .e2ee_format import (
    IV_BYTES,
    MEDIA_KEY_BYTES,
    TAG_BYTES,
    EscrowWrap,
    b64d,
    b64e,
    fingerprint,
    public_from_raw,
)

PUBLIC_KEY_KIND = "recording-public-key"
PUBLIC_KEY_ID = "clinic"
ESCROW_KIND = "recording-escrow"
_ID_MAX = 64


@dataclass(frozen=True)
class RecordingPublicKey:
    raw: bytes
    fingerprint: str
    set_at: float

    def public(self) -> dict[str, str]:
        """The `recording_key` field of `recording-state`."""
        return {"pub": b64e(self.raw), "fingerprint": self.fingerprint}


def parse_public_key(text: str) -> bytes:
    """A B64 (base64url, no padding) raw uncompressed P-256 point; InvalidInput otherwise."""
    try:
        raw = b64d(text.strip())
        public_from_raw(raw)
    except ValueError:
        raise InvalidInput("The recording public key must be a base64url P-256 point "
                           "(as printed by `teleconsult keys recording-keypair`).",
                           code="invalid_recording_key") from None
    return raw


class RecordingKeyRegistry:
    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def set(self, raw: bytes) -> RecordingPublicKey:
        public_from_raw(raw)
        key = RecordingPublicKey(raw, fingerprint(raw), self._clock.now())
        await self._store.put_doc(PUBLIC_KEY_KIND, PUBLIC_KEY_ID, {
            "pub": b64e(raw), "fingerprint": key.fingerprint, "set_at": key.set_at})
        return key

    async def get(self) -> RecordingPublicKey | None:
        doc = await self._store.get_doc(PUBLIC_KEY_KIND, PUBLIC_KEY_ID)
        if doc is None:
            return None
        return RecordingPublicKey(b64d(str(doc["pub"])), str(doc["fingerprint"]),
                                  float(doc["set_at"]))


@dataclass(frozen=True)
class EscrowRecord:
    sender: str
    key_id: int
    epk: str
    iv: str
    ct: str
    received_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EscrowRecord:
        return cls(str(doc["sender"]), int(doc["key_id"]), str(doc["epk"]), str(doc["iv"]),
                   str(doc["ct"]), float(doc.get("received_at", 0.0)))

    def wrap(self) -> EscrowWrap:
        return EscrowWrap(self.sender, self.key_id, b64d(self.epk), b64d(self.iv), b64d(self.ct))


def parse_recording_key(message: Mapping[str, Any]) -> EscrowRecord:
    """Validate a `recording-key` message (shapes only: the server cannot open it)."""
    sender, key_id = message.get("sender"), message.get("key_id")
    if not isinstance(sender, str) or not 0 < len(sender) <= _ID_MAX:
        raise InvalidInput("sender must be a participant id.", code="invalid_field")
    if isinstance(key_id, bool) or not isinstance(key_id, int) or not 0 < key_id <= 0xFFFFFFFF:
        raise InvalidInput("key_id must be a nonzero 32-bit number.", code="invalid_field")
    fields = {}
    for name, size in (("epk", 65), ("iv", IV_BYTES), ("ct", MEDIA_KEY_BYTES + TAG_BYTES)):
        value = message.get(name)
        try:
            ok = isinstance(value, str) and len(b64d(value)) == size
        except ValueError:
            ok = False
        if not ok:
            raise InvalidInput(f"{name} must be {size} bytes of base64url.", code="invalid_field")
        fields[name] = str(value)
    try:
        public_from_raw(b64d(fields["epk"]))
    except ValueError:
        raise InvalidInput("epk must be a P-256 point.", code="invalid_field") from None
    return EscrowRecord(sender, key_id, fields["epk"], fields["iv"], fields["ct"])


class EscrowLog:
    """The escrow records of each recording, in arrival order."""

    def __init__(self, store: DocumentStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def append(self, recording_id: str, consultation_id: str,
                     records: list[EscrowRecord]) -> None:
        doc = await self._store.get_doc(ESCROW_KIND, recording_id) or {
            "recording_id": recording_id, "consultation_id": consultation_id, "records": []}
        doc["records"] = [*doc["records"], *(r.to_json() for r in records)]
        await self._store.put_doc(ESCROW_KIND, recording_id, doc)

    async def records(self, recording_id: str) -> list[EscrowRecord]:
        doc = await self._store.get_doc(ESCROW_KIND, recording_id)
        return [EscrowRecord.from_json(r) for r in doc["records"]] if doc else []

    async def delete(self, recording_id: str) -> None:
        await self._store.delete_doc(ESCROW_KIND, recording_id)


@dataclass(frozen=True)
class RecordingEscrow:
    """What the live recording needs under E2EE (the controller's `e2ee` hooks)."""

    mode: Callable[[], str]  # "e2ee" | "hop": the consultation's current mode
    registry: RecordingKeyRegistry
    log: EscrowLog
    clock: Clock

    def stamp(self, record: EscrowRecord) -> EscrowRecord:
        return EscrowRecord(record.sender, record.key_id, record.epk, record.iv, record.ct,
                            self.clock.now())
