"""Streaming AEAD format: round trips, and each kind of damage gives its own specific error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.recording.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    DataKey,
    EncryptedWriter,
    RecordingCorrupt,
    RecordingFormatError,
    RecordingKeyMismatch,
    RecordingTruncated,
    decrypt_file,
    decrypt_file_partial,
)

CHUNK = 1024
BLOCK = CHUNK + TAG_SIZE


def _write(path: Path, key: DataKey, data: bytes, *, pieces: int = 7) -> EncryptedWriter:
    w = EncryptedWriter(path, key, chunk_size=CHUNK)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        w.write(data[i:i + step])
    w.close()
    return w


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 17])
def test_round_trip_any_size(tmp_path: Path, size: int) -> None:
    key = DataKey.generate()
    data = os.urandom(size)
    w = _write(tmp_path / "r.enc", key, data)
    assert w.tell() == size
    raw = (tmp_path / "r.enc").read_bytes()
    assert len(raw) == HEADER_SIZE + size + (size // CHUNK + 1) * TAG_SIZE
    assert decrypt_file(tmp_path / "r.enc", key) == data
    assert os.stat(tmp_path / "r.enc").st_mode & 0o777 == 0o600


def test_ciphertext_only_and_close_idempotent(tmp_path: Path) -> None:
    key = DataKey.generate()
    data = b"\x1a\x45\xdf\xa3" + b"known plaintext marker " * 200
    w = _write(tmp_path / "r.enc", key, data)
    w.close()
    raw = (tmp_path / "r.enc").read_bytes()
    assert b"\x1a\x45\xdf\xa3" not in raw and b"known plaintext marker" not in raw
    assert key.key.hex() not in repr(key) and "key=" not in repr(key)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    key = DataKey.generate()
    _write(tmp_path / "r.enc", key, b"x")
    with pytest.raises(FileExistsError):
        EncryptedWriter(tmp_path / "r.enc", key)


@pytest.fixture
def five_chunks(tmp_path: Path) -> tuple[Path, DataKey, bytes]:
    key = DataKey.generate()
    data = os.urandom(4 * CHUNK + 100)  # chunks 0..3 full, chunk 4 last (100 bytes)
    _write(tmp_path / "r.enc", key, data)
    return tmp_path / "r.enc", key, data


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_flipped_byte_in_middle_chunk(five_chunks: tuple[Path, DataKey, bytes]) -> None:
    path, key, _ = five_chunks
    _flip(path, HEADER_SIZE + 2 * BLOCK + 10)
    with pytest.raises(RecordingCorrupt, match="chunk 2 failed authentication") as info:
        decrypt_file(path, key)
    assert info.value.chunk_index == 2
    with pytest.raises(RecordingCorrupt):  # the lenient reader does not forgive tampering
        decrypt_file_partial(path, key)


def test_flipped_tag_byte_in_full_last_position(tmp_path: Path) -> None:
    key = DataKey.generate()
    _write(tmp_path / "r.enc", key, os.urandom(2 * CHUNK))  # chunk 2 is an empty last chunk
    _flip(tmp_path / "r.enc", HEADER_SIZE + BLOCK + 5)  # chunk 1, full size
    with pytest.raises(RecordingCorrupt, match="chunk 1 failed"):
        decrypt_file(tmp_path / "r.enc", key)


@pytest.mark.parametrize("offset", [12, 20, 33, 39])  # chunk size, key id, nonce prefix, reserved
def test_flipped_header_byte(five_chunks: tuple[Path, DataKey, bytes], offset: int) -> None:
    path, key, _ = five_chunks
    _flip(path, offset)
    with pytest.raises((RecordingCorrupt, RecordingKeyMismatch, RecordingFormatError)) as info:
        decrypt_file(path, key)
    assert "chunk 0" in str(info.value) or "key" in str(info.value) or "reserved" in str(
        info.value) or "chunk size" in str(info.value)


def test_bad_magic_and_version(five_chunks: tuple[Path, DataKey, bytes]) -> None:
    path, key, _ = five_chunks
    _flip(path, 8)
    with pytest.raises(RecordingFormatError, match="unsupported recording format version"):
        decrypt_file(path, key)
    _flip(path, 8)
    _flip(path, 0)
    with pytest.raises(RecordingFormatError, match="bad magic"):
        decrypt_file(path, key)
    path.write_bytes(b"\x89TC")
    with pytest.raises(RecordingFormatError, match="too short"):
        decrypt_file(path, key)


def test_swapped_chunks(five_chunks: tuple[Path, DataKey, bytes]) -> None:
    path, key, _ = five_chunks
    raw = path.read_bytes()
    c1 = raw[HEADER_SIZE + BLOCK:HEADER_SIZE + 2 * BLOCK]
    c2 = raw[HEADER_SIZE + 2 * BLOCK:HEADER_SIZE + 3 * BLOCK]
    path.write_bytes(raw[:HEADER_SIZE + BLOCK] + c2 + c1 + raw[HEADER_SIZE + 3 * BLOCK:])
    with pytest.raises(RecordingCorrupt, match=r"chunk 1 failed authentication.*reordered"):
        decrypt_file(path, key)


def test_wrong_key(five_chunks: tuple[Path, DataKey, bytes]) -> None:
    path, key, _ = five_chunks
    with pytest.raises(RecordingKeyMismatch, match="encrypted under data key"):
        decrypt_file(path, DataKey.generate())
    same_id_other_bytes = DataKey(key_id=key.key_id, key=os.urandom(32))
    with pytest.raises(RecordingCorrupt, match=r"chunk 0 failed authentication.*wrong key"):
        decrypt_file(path, same_id_other_bytes)


def test_truncated_at_chunk_boundary(five_chunks: tuple[Path, DataKey, bytes]) -> None:
    path, key, data = five_chunks
    raw = path.read_bytes()
    path.write_bytes(raw[:HEADER_SIZE + 3 * BLOCK])  # last chunk and one more gone
    with pytest.raises(RecordingTruncated, match="ends after chunk 2 without a last chunk") as i:
        decrypt_file(path, key)
    assert i.value.chunks_ok == 3 and i.value.plaintext_bytes == 3 * CHUNK
    part = decrypt_file_partial(path, key)
    assert part.truncated and part.chunks == 3 and part.data == data[:3 * CHUNK]


def test_truncated_mid_chunk(five_chunks: tuple[Path, DataKey, bytes]) -> None:
    path, key, data = five_chunks
    raw = path.read_bytes()
    path.write_bytes(raw[:HEADER_SIZE + 2 * BLOCK + 300])
    with pytest.raises(RecordingTruncated, match="chunk 2 is incomplete"):
        decrypt_file(path, key)
    part = decrypt_file_partial(path, key)
    assert part.truncated and part.data == data[:2 * CHUNK]


def test_appended_bytes_are_refused(tmp_path: Path) -> None:
    key = DataKey.generate()
    _write(tmp_path / "r.enc", key, os.urandom(CHUNK))  # chunk 0 full, chunk 1 empty last
    raw = (tmp_path / "r.enc").read_bytes()
    (tmp_path / "r.enc").write_bytes(raw + b"\x00" * 40)
    with pytest.raises(RecordingTruncated, match="chunk 1 is incomplete or damaged"):
        decrypt_file(tmp_path / "r.enc", key)


_WRITER = """
import sys
from pathlib import Path
from server.recording.crypto import DataKey, EncryptedWriter
key = DataKey(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]))
w = EncryptedWriter(Path(sys.argv[1]), key, chunk_size=1024)
i = 0
while True:  # an endless deterministic stream until killed
    w.write(i.to_bytes(4, "big") * 64)
    i += 1
"""


def test_writer_killed_midway_decrypts_to_last_whole_chunk(tmp_path: Path) -> None:
    key = DataKey.generate()
    path = tmp_path / "crash.enc"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), key.key_id.hex(),
                             key.key.hex()], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 20
        # wait on a condition (file has ≥ 50 sealed chunks), bounded
        while not (path.exists() and path.stat().st_size >= HEADER_SIZE + 50 * BLOCK):
            assert proc.poll() is None, "writer died on its own"
            assert time.monotonic() < deadline, "writer made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(RecordingTruncated):
        decrypt_file(path, key)
    part = decrypt_file_partial(path, key)
    assert part.truncated and part.chunks >= 50
    assert len(part.data) == part.chunks * CHUNK
    expected = b"".join(i.to_bytes(4, "big") * 64 for i in range(len(part.data) // 256))
    assert part.data == expected
