"""The encrypted backup file format (layer 3): scrypt from the operator's passphrase, then
AES-256-GCM in chunks with the STREAM construction — the same chunking as recordings
(server/recording/crypto.py, docs/recording-format.md), with a passphrase-derived key instead
of a wrapped data key. Only `cryptography` primitives (maintained, already a dependency).

    header (60 bytes) | chunk 0 | chunk 1 | … | chunk n (last)

- header: magic ``b"\\x89TCBAK\\r\\n"``, version 1, kdf 1 (scrypt), log2(N), r, p, 3 reserved
  zero bytes, chunk size (u32 BE), salt (16 random bytes), nonce prefix (7 random bytes),
  1 reserved zero byte, key check (16 bytes). The whole header is the AAD of every chunk.
- scrypt(passphrase, salt, N, r, p) gives 64 bytes: the first 32 are the AES-256-GCM key, the
  last 32 only feed the key check, SHA-256("teleconsult-backup-check" || k2)[:16], so a wrong
  passphrase is told apart from a corrupted file without trying to decrypt anything.
- chunk i: AES-256-GCM(key, prefix || i (u32 BE) || last flag, plaintext_i, aad=header);
  reordered, dropped, altered or truncated chunks are all detected.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import DomainError

MAGIC = b"\x89TCBAK\r\n"
VERSION = 1
KDF_SCRYPT = 1
HEADER = struct.Struct(">8sBBBBB3sI16s7sB16s")
HEADER_SIZE = HEADER.size  # 60
TAG_SIZE = 16
CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
# scrypt cost: N = 2**17, r = 8, p = 1 (128 MiB, ~0.5 s here): the interactive-login figures of
# the scrypt paper and RFC 7914 raised one step; the header keeps them, so they can grow.
LOG2_N, R, P = 17, 8, 1
MAX_LOG2_N = 20
MIN_PASSPHRASE_CHARS = 12
_CHECK_LABEL = b"teleconsult-backup-check"


class BackupError(DomainError):
    """A backup cannot be written or read; the message says why, in one line."""

    status = 422
    code = "backup_unreadable"


@dataclass(frozen=True)
class _Header:
    log2_n: int
    r: int
    p: int
    chunk_size: int
    salt: bytes
    prefix: bytes
    check: bytes

    @property
    def raw(self) -> bytes:
        return HEADER.pack(MAGIC, VERSION, KDF_SCRYPT, self.log2_n, self.r, self.p, bytes(3),
                           self.chunk_size, self.salt, self.prefix, 0, self.check)

    def nonce(self, index: int, last: bool) -> bytes:
        return self.prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    material = Scrypt(salt=salt, length=64, n=2**log2_n, r=r, p=p).derive(passphrase.encode())
    check = hashlib.sha256(_CHECK_LABEL + material[32:]).digest()[:16]
    return material[:32], check


class BackupWriter:
    """Writes an encrypted backup to a new file (O_EXCL, mode 0600); `write` then `close`."""

    def __init__(self, dst: BinaryIO, passphrase: str, *, chunk_size: int = CHUNK_SIZE) -> None:
        if len(passphrase) < MIN_PASSPHRASE_CHARS:
            raise BackupError(f"the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
        salt = secrets.token_bytes(16)
        key, check = _derive(passphrase, salt, LOG2_N, R, P)
        self._header = _Header(LOG2_N, R, P, chunk_size, salt, secrets.token_bytes(7), check)
        self._aead = AESGCM(key)
        self._dst = dst
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        dst.write(self._header.raw)

    def write(self, data: bytes) -> int:
        self._buf += data
        size = self._header.chunk_size
        while len(self._buf) > size:  # keep at least one byte back: the last chunk seals at close
            self._seal(bytes(self._buf[:size]), last=False)
            del self._buf[:size]
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._seal(bytes(self._buf), last=True)
        self._buf.clear()

    def _seal(self, plain: bytes, *, last: bool) -> None:
        nonce = self._header.nonce(self._index, last)
        self._dst.write(self._aead.encrypt(nonce, plain, self._header.raw))
        self._index += 1


def _read_header(src: BinaryIO) -> _Header:
    raw = src.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or not raw.startswith(MAGIC):
        raise BackupError("this file is not a teleconsult backup")
    _magic, version, kdf, log2_n, r, p, reserved, chunk_size, salt, prefix, zero, check = HEADER.unpack(raw)
    if version != VERSION or kdf != KDF_SCRYPT:
        raise BackupError(f"backup format version {version} (kdf {kdf}) is not supported by this version")
    if reserved != bytes(3) or zero != 0 or not 1 <= chunk_size <= MAX_CHUNK_SIZE \
            or not 10 <= log2_n <= MAX_LOG2_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise BackupError("the backup header is damaged (corrupted file)")
    return _Header(log2_n, r, p, chunk_size, salt, prefix, check)


def decrypt_chunks(src: BinaryIO, passphrase: str) -> Iterator[bytes]:
    """Yield the authentic plaintext, chunk by chunk. Raises BackupError for a wrong passphrase
    (before any chunk), a damaged chunk, or a file cut short — the caller must treat what it
    got so far as untrusted until the iterator ends normally."""
    header = _read_header(src)
    key, check = _derive(passphrase, header.salt, header.log2_n, header.r, header.p)
    if not hmac.compare_digest(check, header.check):
        raise BackupError("wrong passphrase for this backup (or its header was altered)")
    aead = AESGCM(key)
    sealed_size = header.chunk_size + TAG_SIZE
    index = 0
    current = src.read(sealed_size)
    while True:
        if len(current) < TAG_SIZE:
            raise BackupError(f"the backup is truncated (no final chunk after {index} chunks)")
        following = src.read(sealed_size) if len(current) == sealed_size else b""
        last = not following
        try:
            yield aead.decrypt(header.nonce(index, last), current, header.raw)
        except InvalidTag:
            if last:
                raise BackupError(f"the backup is corrupted or truncated at chunk {index}") from None
            raise BackupError(f"the backup is corrupted: chunk {index} failed authentication") from None
        if last:
            return
        index += 1
        current = following


def new_backup_file(path: os.PathLike[str] | str) -> BinaryIO:
    """Open a new file for a backup: never overwrite, never follow an existing name; 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(f"{path} already exists; choose a new file name") from None
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror}") from None
    return os.fdopen(fd, "wb")
