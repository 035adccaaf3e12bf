"""Envelope encryption of recordings (DESIGN D6), layer 3.

- A **keyring** file (`Settings.kek_path`, mode 0600) holds the clinic's key-encryption keys
  (KEKs): each a key id and 256 random bits. One is *current*: new data keys are wrapped by it.
  It is generated at first start, or supplied by the operator (same format, see
  docs/recording-format.md). The server refuses a keyring readable by group or others.
- Each recording has its own random **data key** (crypto.DataKey). It is wrapped with AES-256-GCM
  under the current KEK — AAD binds it to its recording id and data key id, so a wrapped key
  cannot be moved to another recording — and stored in the store as document
  ``("recording_key", recording_id)``, never beside the file. Its own document (not the
  recording's) so that rotation and shredding touch nothing else.
- **Rotation** (`rotate_kek`): add a new KEK as current and save; re-wrap every data key under
  it; then drop the old KEKs and save. A crash in between leaves a keyring holding old and new
  KEKs, which still opens everything; running rotate again completes it.
- **Crypto-shredding** (`RecordingKeys.destroy`): deleting the wrapped data key makes the file
  and every backup of it undecryptable; callers destroy the key first, then the file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..clock import Clock
from ..errors import DomainError, NotFound
from ..store.base import DocumentStore
from .crypto import KEY_ID_SIZE, DataKey

KEYRING_FORMAT = "teleconsult-keyring"
KEYRING_VERSION = 1
KEY_DOC_KIND = "recording_key"
_WRAP_AAD_PREFIX = b"teleconsult-data-key-v1\x00"


class KeyringError(DomainError):
    """The key-encryption keyring is missing, unreadable, unsafe or inconsistent."""

    status = 500
    code = "keyring_error"


class DataKeyDestroyed(NotFound):
    """This recording's data key does not exist (destroyed or never created)."""

    code = "recording_key_missing"


@dataclass(frozen=True)
class Kek:
    kek_id: str
    key: bytes = field(repr=False)
    created_at: float

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise KeyringError(f"KEK {self.kek_id} is not 256 bits")


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under a KEK, as stored in the ("recording_key", id) document."""

    recording_id: str
    data_key_id: str  # hex, as in the file header
    kek_id: str
    sealed: bytes  # 12-byte nonce || AES-GCM(kek, data key, aad)
    created_at: float

    def to_doc(self) -> dict[str, Any]:
        return {"recording_id": self.recording_id, "data_key_id": self.data_key_id,
                "kek_id": self.kek_id, "alg": "A256GCM",
                "sealed": base64.b64encode(self.sealed).decode(), "created_at": self.created_at}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> WrappedKey:
        try:
            if doc.get("alg") != "A256GCM":
                raise ValueError("alg")
            return cls(str(doc["recording_id"]), str(doc["data_key_id"]), str(doc["kek_id"]),
                       base64.b64decode(str(doc["sealed"]), validate=True),
                       float(doc["created_at"]))
        except (KeyError, ValueError, TypeError):
            raise KeyringError("a stored recording key document is malformed") from None


def _aad(recording_id: str, data_key_id: str) -> bytes:
    return _WRAP_AAD_PREFIX + recording_id.encode() + b"\x00" + data_key_id.encode()


class Keyring:
    """The KEKs, loaded from their file. Reloads itself when the file changes on disk, so a
    server wraps new data keys under the KEK that `keys rotate` made current."""

    def __init__(self, path: Path, keks: Mapping[str, Kek], current_id: str) -> None:
        if current_id not in keks:
            raise KeyringError(f"keyring {path}: current KEK {current_id} is not in it")
        self.path = path
        self._keks = dict(keks)
        self._current_id = current_id
        self._stamp = _stamp(path)

    # loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise KeyringError(f"keyring {path} does not exist") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(f"keyring {path} is accessible by group or others; chmod 600 it")
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise KeyringError(f"keyring {path} is unreadable or not JSON") from None
        return cls._parse(path, data)

    @classmethod
    def load_or_create(cls, path: Path, clock: Clock) -> Keyring:
        """Load the keyring; at first start (no file) create one with a fresh KEK."""
        if not path.exists():
            kek = new_kek(clock)
            ring = cls(path, {kek.kek_id: kek}, kek.kek_id)
            ring.save(exclusive=True)
            return ring
        return cls.load(path)

    @classmethod
    def _parse(cls, path: Path, data: Any) -> Keyring:
        try:
            if data["format"] != KEYRING_FORMAT or data["version"] != KEYRING_VERSION:
                raise KeyringError(f"keyring {path}: unknown format or version")
            keks: dict[str, Kek] = {}
            for entry in data["keks"]:
                kek = Kek(str(entry["id"]), base64.b64decode(entry["key"], validate=True),
                          float(entry["created_at"]))
                keks[kek.kek_id] = kek
            current = str(data["current"])
        except (KeyError, TypeError, ValueError):
            raise KeyringError(f"keyring {path}: malformed entries") from None
        return cls(path, keks, current)

    def save(self, *, exclusive: bool = False) -> None:
        """Atomically replace the file (write 0600 temp, fsync, rename, fsync dir)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({
            "format": KEYRING_FORMAT, "version": KEYRING_VERSION, "current": self._current_id,
            "keks": [{"id": k.kek_id, "key": base64.b64encode(k.key).decode(),
                      "created_at": k.created_at} for k in self._keks.values()],
        }, indent=2).encode()
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            if exclusive:
                os.link(tmp, self.path)  # fails if another process created it first
                os.unlink(tmp)
            else:
                os.replace(tmp, self.path)
        except FileExistsError:
            os.unlink(tmp)
            raise KeyringError(f"keyring {self.path} was created concurrently") from None
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._stamp = _stamp(self.path)

    def reload_if_changed(self) -> None:
        if _stamp(self.path) != self._stamp:
            fresh = Keyring.load(self.path)
            self._keks, self._current_id, self._stamp = (fresh._keks, fresh._current_id,
                                                         fresh._stamp)

    # keys ---------------------------------------------------------------------------------
    @property
    def current(self) -> Kek:
        return self._keks[self._current_id]

    @property
    def kek_ids(self) -> tuple[str, ...]:
        return tuple(self._keks)

    def get(self, kek_id: str) -> Kek:
        try:
            return self._keks[kek_id]
        except KeyError:
            raise KeyringError(f"KEK {kek_id} is not in keyring {self.path}") from None

    def add_current(self, kek: Kek) -> None:
        self._keks[kek.kek_id] = kek
        self._current_id = kek.kek_id

    def keep_only_current(self) -> list[str]:
        dropped = [k for k in self._keks if k != self._current_id]
        self._keks = {self._current_id: self._keks[self._current_id]}
        return dropped

    def wrap(self, data_key: DataKey, recording_id: str, created_at: float) -> WrappedKey:
        kek = self.current
        nonce = secrets.token_bytes(12)
        sealed = nonce + AESGCM(kek.key).encrypt(
            nonce, data_key.key, _aad(recording_id, data_key.key_id_hex))
        return WrappedKey(recording_id, data_key.key_id_hex, kek.kek_id, sealed, created_at)

    def unwrap(self, wrapped: WrappedKey) -> DataKey:
        kek = self.get(wrapped.kek_id)
        try:
            key = AESGCM(kek.key).decrypt(wrapped.sealed[:12], wrapped.sealed[12:],
                                          _aad(wrapped.recording_id, wrapped.data_key_id))
            key_id = bytes.fromhex(wrapped.data_key_id)
        except (InvalidTag, ValueError):
            raise KeyringError(
                f"data key of recording {wrapped.recording_id} does not unwrap under KEK "
                f"{wrapped.kek_id}") from None
        if len(key_id) != KEY_ID_SIZE:
            raise KeyringError(f"data key id of recording {wrapped.recording_id} is malformed")
        return DataKey(key_id=key_id, key=key)


def new_kek(clock: Clock) -> Kek:
    return Kek(f"kek-{secrets.token_hex(8)}", AESGCM.generate_key(256), clock.now())


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class RecordingKeys:
    """Data keys of recordings, wrapped in the store."""

    def __init__(self, store: DocumentStore, keyring: Keyring, clock: Clock) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock

    async def create(self, recording_id: str) -> DataKey:
        """A fresh data key for a new recording, wrapped and stored before it is returned."""
        if await self._store.get_doc(KEY_DOC_KIND, recording_id) is not None:
            raise KeyringError(f"recording {recording_id} already has a data key")
        with contextlib.suppress(KeyringError):
            self._keyring.reload_if_changed()  # keep serving with the loaded ring if unreadable
        data_key = DataKey.generate()
        wrapped = self._keyring.wrap(data_key, recording_id, self._clock.now())
        await self._store.put_doc(KEY_DOC_KIND, recording_id, wrapped.to_doc())
        return data_key

    async def get(self, recording_id: str) -> DataKey:
        doc = await self._store.get_doc(KEY_DOC_KIND, recording_id)
        if doc is None:
            raise DataKeyDestroyed(f"recording {recording_id} has no data key (destroyed)")
        wrapped = WrappedKey.from_doc(doc)
        if wrapped.recording_id != recording_id:
            raise KeyringError(f"stored data key does not belong to recording {recording_id}")
        if wrapped.kek_id not in self._keyring.kek_ids:
            self._keyring.reload_if_changed()
        return self._keyring.unwrap(wrapped)

    async def destroy(self, recording_id: str) -> bool:
        """Crypto-shred: delete the wrapped data key. True when one existed."""
        return await self._store.delete_doc(KEY_DOC_KIND, recording_id)


@dataclass(frozen=True)
class RotationReport:
    new_kek_id: str
    dropped_kek_ids: tuple[str, ...]
    rewrapped: int


async def rotate_kek(keyring_path: Path, store: DocumentStore, clock: Clock) -> RotationReport:
    """New KEK; re-wrap every data key under it; forget the old KEKs. Safe to re-run after a
    crash. Raises KeyringError (and drops nothing) if a data key cannot be unwrapped."""
    ring = Keyring.load(keyring_path)
    kek = new_kek(clock)
    ring.add_current(kek)
    ring.save()
    rewrapped = 0
    for doc in await store.list_docs(KEY_DOC_KIND):
        wrapped = WrappedKey.from_doc(doc)
        if wrapped.kek_id == kek.kek_id:
            continue
        data_key = ring.unwrap(wrapped)
        fresh = ring.wrap(data_key, wrapped.recording_id, wrapped.created_at)
        # Skip a key destroyed meanwhile: never resurrect a shredded recording.
        if await store.get_doc(KEY_DOC_KIND, wrapped.recording_id) is None:
            continue
        await store.put_doc(KEY_DOC_KIND, wrapped.recording_id, fresh.to_doc())
        rewrapped += 1
    dropped = ring.keep_only_current()
    ring.save()
    return RotationReport(kek.kek_id, tuple(dropped), rewrapped)
