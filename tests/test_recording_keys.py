"""Envelope encryption: keyring file, wrapped data keys in the store, rotation, shredding."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.recording.crypto import DataKey, EncryptedWriter, decrypt_file
from server.recording.keys import (
    KEY_DOC_KIND,
    DataKeyDestroyed,
    Keyring,
    KeyringError,
    RecordingKeys,
    rotate_kek,
)
from server.store.base import Store


def test_keyring_created_once_0600(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "data" / "kek.json"
    ring = Keyring.load_or_create(path, clock)
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = Keyring.load_or_create(path, clock)
    assert again.current.kek_id == ring.current.kek_id and again.current.key == ring.current.key
    assert ring.current.key.hex() not in repr(ring.current)
    assert [p.name for p in path.parent.iterdir()] == ["kek.json"]  # no temp files left


def test_keyring_refuses_unsafe_or_bad_files(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "kek.json"
    Keyring.load_or_create(path, clock)
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="group or others; chmod 600"):
        Keyring.load(path)
    os.chmod(path, 0o600)
    path.write_text("{not json")
    with pytest.raises(KeyringError, match="not JSON"):
        Keyring.load(path)
    path.write_text(json.dumps({"format": "teleconsult-keyring", "version": 1,
                                "current": "x", "keks": []}))
    with pytest.raises(KeyringError, match="current KEK x is not in it"):
        Keyring.load(path)
    with pytest.raises(KeyringError, match="does not exist"):
        Keyring.load(tmp_path / "missing.json")


def test_operator_supplied_keyring(tmp_path: Path) -> None:
    path = tmp_path / "operator-kek.json"
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps({"format": "teleconsult-keyring", "version": 1, "current": "clinic-1",
                             "keks": [{"id": "clinic-1", "key": base64.b64encode(key).decode(),
                                       "created_at": 0}]}).encode())
    os.close(fd)
    ring = Keyring.load(path)
    assert ring.current.kek_id == "clinic-1" and ring.current.key == key


async def test_data_key_wrapped_in_store_and_bound_to_recording(
        store: Store, tmp_path: Path, clock: ManualClock) -> None:
    ring = Keyring.load_or_create(tmp_path / "kek.json", clock)
    keys = RecordingKeys(store, ring, clock)
    dk = await keys.create("rec-1")
    doc = await store.get_doc(KEY_DOC_KIND, "rec-1")
    assert doc is not None and doc["kek_id"] == ring.current.kek_id
    assert base64.b64encode(dk.key).decode() not in json.dumps(doc)
    assert (await keys.get("rec-1")) == dk
    with pytest.raises(KeyringError, match="already has a data key"):
        await keys.create("rec-1")
    # A wrapped key copied onto another recording does not unwrap (AAD binds the id).
    await store.put_doc(KEY_DOC_KIND, "rec-2", {**doc, "recording_id": "rec-2"})
    with pytest.raises(KeyringError, match="does not unwrap"):
        await keys.get("rec-2")


async def test_shredded_recording_cannot_be_decrypted(
        store: Store, tmp_path: Path, clock: ManualClock) -> None:
    ring = Keyring.load_or_create(tmp_path / "kek.json", clock)
    keys = RecordingKeys(store, ring, clock)
    dk = await keys.create("rec-1")
    w = EncryptedWriter(tmp_path / "rec-1.enc", dk)
    w.write(b"secret media")
    w.close()
    backup = (tmp_path / "rec-1.enc").read_bytes()  # a backup taken before erasure
    assert await keys.destroy("rec-1")
    with pytest.raises(DataKeyDestroyed):
        await keys.get("rec-1")
    # Nothing the server still holds (keyring + store) yields the key.
    assert await store.list_docs(KEY_DOC_KIND) == []
    assert dk.key not in (tmp_path / "kek.json").read_bytes()
    (tmp_path / "backup.enc").write_bytes(backup)
    for kek in (ring.current.key,):
        with pytest.raises(Exception):  # noqa: B017 - any key but the destroyed one fails
            decrypt_file(tmp_path / "backup.enc", DataKey(dk.key_id, kek))


async def test_rotate_rewraps_everything_and_drops_old_kek(
        store: Store, tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "kek.json"
    server_ring = Keyring.load_or_create(path, clock)  # the running server's instance
    old_kek = server_ring.current
    old_ring_copy = path.read_bytes()
    keys = RecordingKeys(store, server_ring, clock)
    plain = {}
    for i in range(3):
        dk = await keys.create(f"rec-{i}")
        w = EncryptedWriter(tmp_path / f"rec-{i}.enc", dk)
        plain[i] = os.urandom(1000 + i)
        w.write(plain[i])
        w.close()
    await keys.destroy("rec-2")  # a shredded one must stay shredded

    clock.advance(3600)
    report = await rotate_kek(path, store, clock)
    assert report.rewrapped == 2 and report.dropped_kek_ids == (old_kek.kek_id,)

    fresh = Keyring.load(path)
    assert fresh.kek_ids == (report.new_kek_id,)
    assert base64.b64encode(old_kek.key) not in path.read_bytes()
    fresh_keys = RecordingKeys(store, fresh, clock)
    for i in range(2):
        assert decrypt_file(tmp_path / f"rec-{i}.enc", await fresh_keys.get(f"rec-{i}")) == plain[i]
    with pytest.raises(DataKeyDestroyed):
        await fresh_keys.get("rec-2")

    # The old KEK alone opens nothing any more.
    old_path = tmp_path / "old.json"
    fd = os.open(old_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, old_ring_copy)
    os.close(fd)
    with pytest.raises(KeyringError, match="not in keyring"):
        await RecordingKeys(store, Keyring.load(old_path), clock).get("rec-0")

    # The running server notices the rotation: new keys wrap under the new KEK.
    await keys.create("rec-3")
    doc = await store.get_doc(KEY_DOC_KIND, "rec-3")
    assert doc is not None and doc["kek_id"] == report.new_kek_id
    assert (await keys.get("rec-0")) == (await fresh_keys.get("rec-0"))
