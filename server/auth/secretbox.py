"""Encryption at rest for small secrets (TOTP seeds): AES-256-GCM under the app secret key.

The key is 32 random bytes in `<data_dir>/app_secret.key`, created at first start with mode
0600. Several nodes sharing one Redis store must share this file (copy it with the same mode).
Each value is bound to its owner with associated data (e.g. the account id), so a ciphertext
copied onto another account does not decrypt.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError

KEY_FILE_NAME = "app_secret.key"
KEY_LENGTH = 32
NONCE_LENGTH = 12
PREFIX = "v1:"


class SecretBoxError(Exception):
    """A stored secret does not decrypt (wrong key, tampering or wrong owner)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LENGTH:
            raise ValueError("the app secret key must be 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SecretBox:
        """Read the key file, or create it (0600, exclusive) when absent."""
        path = data_dir / KEY_FILE_NAME
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(KEY_LENGTH))
                fh.flush()
                os.fsync(fh.fileno())
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the app secret key {path}: {exc.strerror}") from None
        if len(key) != KEY_LENGTH:
            raise ConfigError(f"the app secret key {path} is not 32 bytes; restore it from backup")
        return cls(key)

    def seal(self, plaintext: str, *, owner: str) -> str:
        nonce = os.urandom(NONCE_LENGTH)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), owner.encode("utf-8"))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, *, owner: str) -> str:
        if not token.startswith(PREFIX):
            raise SecretBoxError("unknown sealed format")
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX):])
            plain = self._aead.decrypt(raw[:NONCE_LENGTH], raw[NONCE_LENGTH:], owner.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise SecretBoxError("sealed secret does not decrypt") from None
        return plain.decode("utf-8")
