"""Streaming authenticated encryption of recordings (DESIGN D6), layer 3.

Format (documented byte by byte in docs/recording-format.md):

    header (40 bytes) | chunk 0 | chunk 1 | … | chunk n (last)

- header: magic ``b"\\x89TCREC\\r\\n"``, version 1, algorithm 1 (AES-256-GCM), 2 reserved zero
  bytes, chunk size (u32 BE), data key id (16 bytes), nonce prefix (7 random bytes), 1 reserved
  zero byte. The whole header is the AAD of every chunk, so altering any header byte makes
  chunk 0 fail.
- chunk i: AES-256-GCM(key, nonce_i, plaintext_i, aad=header) = ciphertext || 16-byte tag.
  Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds
  0..chunk_size bytes (an empty recording is one empty last chunk).
- nonce_i = prefix (7) || i as u32 BE (4) || last flag (1: 0x01 for the last chunk, else 0x00)
  — the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): reordering, dropping or
  truncating chunks is detected, and so is a file cut at a chunk boundary (no last chunk).

Nothing here ever writes plaintext to disk: `EncryptedWriter` keeps at most one chunk of
plaintext in memory and writes sealed chunks only.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import metrics
from ..errors import DomainError

MAGIC = b"\x89TCREC\r\n"
FORMAT_VERSION = 1
ALG_AES256GCM = 1
HEADER_STRUCT = struct.Struct(">8sBBHI16s7sB")
HEADER_SIZE = HEADER_STRUCT.size  # 40
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
KEY_ID_SIZE = 16
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_CHUNKS = 2**32  # the counter is 4 bytes


class RecordingCryptoError(DomainError):
    """The recording cannot be decrypted."""

    status = 422
    code = "recording_unreadable"


class RecordingFormatError(RecordingCryptoError):
    """The file is not an encrypted recording this version understands (magic, version, sizes)."""

    code = "recording_bad_format"


class RecordingKeyMismatch(RecordingCryptoError):
    """The file was encrypted under another data key (key ids differ)."""

    code = "recording_wrong_key"


class RecordingCorrupt(RecordingCryptoError):
    """A chunk failed authentication: altered, reordered, or decrypted with a wrong key."""

    code = "recording_corrupt"

    def __init__(self, message: str, *, chunk_index: int) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index


class RecordingTruncated(RecordingCryptoError):
    """The file ends before its last chunk: cut by a crash, or shortened."""

    code = "recording_truncated"

    def __init__(self, message: str, *, chunks_ok: int, plaintext_bytes: int) -> None:
        super().__init__(message)
        self.chunks_ok = chunks_ok
        self.plaintext_bytes = plaintext_bytes


@dataclass(frozen=True)
class DataKey:
    """A per-recording AES-256 data key. `repr` never shows the key bytes."""

    key_id: bytes  # 16 bytes, written in every file header
    key: bytes = field(repr=False)  # 32 bytes

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_SIZE:
            raise ValueError(f"a data key id is {KEY_ID_SIZE} bytes")
        if len(self.key) != 32:
            raise ValueError("a data key is 32 bytes (AES-256)")

    @classmethod
    def generate(cls) -> DataKey:
        return cls(key_id=secrets.token_bytes(KEY_ID_SIZE), key=AESGCM.generate_key(256))

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()


@dataclass(frozen=True)
class RecordingHeader:
    version: int
    algorithm: int
    chunk_size: int
    key_id: bytes
    nonce_prefix: bytes
    raw: bytes  # the 40 bytes as read: the AAD of every chunk

    @classmethod
    def new(cls, key_id: bytes, chunk_size: int) -> RecordingHeader:
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")
        prefix = secrets.token_bytes(NONCE_PREFIX_SIZE)
        raw = HEADER_STRUCT.pack(MAGIC, FORMAT_VERSION, ALG_AES256GCM, 0, chunk_size, key_id,
                                 prefix, 0)
        return cls(FORMAT_VERSION, ALG_AES256GCM, chunk_size, key_id, prefix, raw)

    @classmethod
    def parse(cls, raw: bytes) -> RecordingHeader:
        if len(raw) < HEADER_SIZE:
            raise RecordingFormatError(
                f"file too short for a recording header ({len(raw)} of {HEADER_SIZE} bytes)")
        magic, version, alg, reserved, chunk_size, key_id, prefix, reserved2 = (
            HEADER_STRUCT.unpack(raw[:HEADER_SIZE]))
        if magic != MAGIC:
            raise RecordingFormatError("not an encrypted recording (bad magic)")
        if version != FORMAT_VERSION:
            raise RecordingFormatError(f"unsupported recording format version {version}")
        if alg != ALG_AES256GCM:
            raise RecordingFormatError(f"unsupported recording algorithm {alg}")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise RecordingFormatError(f"invalid chunk size {chunk_size} in header")
        # Reserved bytes are authenticated (AAD); a non-zero value is a format from the future.
        if reserved or reserved2:
            raise RecordingFormatError("reserved header bytes are not zero")
        return cls(version, alg, chunk_size, key_id, prefix, bytes(raw[:HEADER_SIZE]))

    def nonce(self, index: int, last: bool) -> bytes:
        if not 0 <= index < MAX_CHUNKS:
            raise RecordingCryptoError("chunk counter exhausted")
        return self.nonce_prefix + struct.pack(">IB", index, 1 if last else 0)


class EncryptedWriter(io.RawIOBase):
    """A write-only binary file whose bytes land on disk only as sealed AES-GCM chunks.

    `write` buffers up to one chunk of plaintext in memory and seals each full chunk at once;
    `close` seals the (possibly empty) last chunk. `flush` pushes the sealed chunks to the OS
    (and fsyncs when `durable`); the partial chunk stays in memory until it fills or close,
    because sealing it early would make it a last chunk. Not seekable: `tell` is the plaintext
    position. A process killed mid-way leaves a file that decrypts up to its last whole chunk.
    """

    def __init__(self, path: Path, key: DataKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 durable: bool = False) -> None:
        super().__init__()
        self._header = RecordingHeader.new(key.key_id, chunk_size)
        self._aead = AESGCM(key.key)
        self._chunk_size = chunk_size
        self._durable = durable
        self._buf = bytearray()
        self._index = 0
        self._pos = 0
        self._cipher_bytes = 0
        self._sha = hashlib.sha256()
        self.path = path
        # O_EXCL: never reuse or follow an existing file; 0600: only the server reads it.
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._write_raw(self._header.raw)

    # io.RawIOBase interface -------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self._fd is None:
            raise ValueError("write to a closed EncryptedWriter")
        view = memoryview(data).cast("B")
        n = len(view)
        offset = 0
        while offset < n:
            take = min(self._chunk_size - len(self._buf), n - offset)
            self._buf += view[offset:offset + take]
            offset += take
            if len(self._buf) == self._chunk_size:
                # A full chunk is sealed as non-last; the last chunk is sealed by close().
                self._seal(last=False)
        self._pos += n
        return n

    def flush(self) -> None:
        if self._fd is not None and self._durable:
            os.fsync(self._fd)

    def close(self) -> None:
        """Seal the last chunk and close the file. Idempotent."""
        if self._fd is None:
            return
        try:
            self._seal(last=True)
            if self._durable:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
            super().close()

    def abort(self) -> None:
        """Close without sealing a last chunk (the file then reads as truncated). Idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()

    # results -----------------------------------------------------------------------------
    @property
    def ciphertext_sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def ciphertext_bytes(self) -> int:
        return self._cipher_bytes

    @property
    def chunks_written(self) -> int:
        return self._index

    # internals ---------------------------------------------------------------------------
    def _seal(self, *, last: bool) -> None:
        sealed = self._aead.encrypt(self._header.nonce(self._index, last), bytes(self._buf),
                                    self._header.raw)
        self._buf.clear()
        self._index += 1
        self._write_raw(sealed)

    def _write_raw(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._sha.update(data)
        self._cipher_bytes += len(data)
        metrics.RECORDING_BYTES.inc(len(data))


@dataclass(frozen=True)
class DecryptResult:
    plaintext_bytes: int
    chunks: int
    truncated: bool
    reason: str  # empty when complete


def read_header(src: BinaryIO) -> RecordingHeader:
    return RecordingHeader.parse(_read_exact(src, HEADER_SIZE))


def iter_chunks(src: BinaryIO, key: DataKey, result: list[DecryptResult]) -> Iterator[bytes]:
    """Yield authenticated plaintext chunks in order. Appends one DecryptResult to `result`
    when the stream ends. Raises RecordingFormatError / RecordingKeyMismatch / RecordingCorrupt.
    A missing or unverifiable tail does not raise here: the result says `truncated`."""
    header = read_header(src)
    if header.key_id != key.key_id:
        raise RecordingKeyMismatch(
            f"recording encrypted under data key {header.key_id.hex()}, "
            f"not {key.key_id.hex()}")
    aead = AESGCM(key.key)
    block = header.chunk_size + TAG_SIZE
    index = 0
    total = 0
    current = _read_exact(src, block)
    while True:
        nxt = _read_exact(src, block) if len(current) == block else b""
        at_end = not nxt
        if not current:
            result.append(DecryptResult(
                total, index, True,
                f"file ends after chunk {index - 1} without a last chunk" if index
                else "file has a header but no chunk"))
            return
        if len(current) < TAG_SIZE:
            result.append(DecryptResult(
                total, index, True, f"chunk {index} is cut short ({len(current)} bytes)"))
            return
        if not at_end:
            plain = _open(aead, header, index, current, last=False)
            if plain is None:
                if _open(aead, header, index, current, last=True) is not None:
                    raise RecordingCorrupt(
                        f"unexpected data after the last chunk (chunk {index})",
                        chunk_index=index)
                raise RecordingCorrupt(_auth_failed(index), chunk_index=index)
        else:
            plain = _open(aead, header, index, current, last=True)
            if plain is None:
                full = (_open(aead, header, index, current, last=False)
                        if len(current) == block else None)
                if full is not None:
                    yield full
                    total += len(full)
                    result.append(DecryptResult(
                        total, index + 1, True,
                        f"file ends after chunk {index} without a last chunk"))
                    return
                if len(current) < block:
                    # A short tail that is not a valid last chunk: a write cut by a crash (or an
                    # altered tail — indistinguishable). Everything before it is authentic.
                    result.append(DecryptResult(
                        total, index, True,
                        f"chunk {index} is incomplete or damaged ({len(current)} bytes)"))
                    return
                raise RecordingCorrupt(_auth_failed(index), chunk_index=index)
        total += len(plain)
        yield plain
        index += 1
        if at_end:
            result.append(DecryptResult(total, index, False, ""))
            return
        current = nxt


def decrypt_stream(src: BinaryIO, dst: BinaryIO, key: DataKey, *,
                   strict: bool = True) -> DecryptResult:
    """Decrypt `src` into `dst`. With strict=True a truncated file raises RecordingTruncated
    (after writing the authentic prefix to dst); otherwise the result says truncated."""
    out: list[DecryptResult] = []
    for plain in iter_chunks(src, key, out):
        dst.write(plain)
    res = out[0]
    if strict and res.truncated:
        raise RecordingTruncated(f"recording truncated: {res.reason}", chunks_ok=res.chunks,
                                 plaintext_bytes=res.plaintext_bytes)
    return res


@dataclass(frozen=True)
class PartialPlaintext:
    data: bytes
    truncated: bool
    chunks: int
    reason: str


def decrypt_file(path: Path, key: DataKey) -> bytes:
    """The whole plaintext of a complete file; raises RecordingTruncated if it was cut."""
    buf = io.BytesIO()
    with open(path, "rb") as src:
        decrypt_stream(src, buf, key, strict=True)
    return buf.getvalue()


def decrypt_file_partial(path: Path, key: DataKey) -> PartialPlaintext:
    """What decrypts: the authentic prefix of a cut file, with truncated=True and the reason."""
    buf = io.BytesIO()
    with open(path, "rb") as src:
        res = decrypt_stream(src, buf, key, strict=False)
    return PartialPlaintext(buf.getvalue(), res.truncated, res.chunks, res.reason)


def _open(aead: AESGCM, header: RecordingHeader, index: int, sealed: bytes, *,
          last: bool) -> bytes | None:
    try:
        return aead.decrypt(header.nonce(index, last), sealed, header.raw)
    except InvalidTag:
        return None


def _auth_failed(index: int) -> str:
    hint = (" (wrong key, altered header, or altered chunk)" if index == 0
            else " (altered, reordered or swapped chunk)")
    return f"chunk {index} failed authentication{hint}"


def _read_exact(src: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    remaining = n
    while remaining:
        part = src.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
