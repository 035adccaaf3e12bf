"""`teleconsult backup` while a call runs on the real server process, then an emptied data
directory, `teleconsult restore`: login works, `audit verify` passes, and a recording made
before the backup exports and decodes with av. Wrong passphrases, damaged, truncated and
foreign files are refused with a clear message and leave the data directory empty."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import av

from client.api import ApiClient, totp_code
from client.provision import provision_doctor
from tests.helpers.ops_helpers import call_through
from tests.helpers.server_process import REPO, run_cli, running_server, server_env
from tests.helpers.waiting import wait_for_condition

PASSPHRASE = "correct horse battery staple, backup edition"


def _ok(env: dict[str, str], *args: str) -> str:
    done = run_cli(list(args), env, timeout_s=120)
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _refused(env: dict[str, str], *args: str) -> str:
    done = run_cli(list(args), env, timeout_s=120)
    assert done.returncode == 1, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


async def test_backup_during_a_call_restores_onto_an_empty_data_dir(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    data = tmp_path / "data"
    backup = tmp_path / "clinic.tcbak"
    with running_server(tmp_path) as server:
        creds = await provision_doctor(server.base_url, env, "dr.backup@example.test", cwd=REPO)
        async with call_through(server.base_url, creds, consent=True) as call:
            await call.host.request_recording()
            await wait_for_condition(lambda: call.host.recording_state == "recording", timeout_s=20,
                                     what="recording started")
            video_before = call.patient.media.frames_from(call.host.participant_id, "video")
            await wait_for_condition(
                lambda: call.patient.media.frames_from(call.host.participant_id, "video") > video_before + 45,
                timeout_s=20, what="3 s of video recorded")
            await call.host.send({"v": 1, "type": "record-stop"})
            await wait_for_condition(lambda: call.host.recording_state != "recording", timeout_s=20,
                                     what="recording stopped")
            rows = [json.loads(line) for line in _ok(env, "recordings", "list", "--json").splitlines()]
            assert len(rows) == 1 and rows[0]["state"] == "stopped", rows
            recording_id = rows[0]["id"]

            # the backup, while the call goes on (passphrase from the environment, as a job would)
            flowing_before = call.host.media.frames_from(call.patient.participant_id, "video")
            out = _ok({**env, "TELECONSULT_BACKUP_PASSPHRASE": PASSPHRASE}, "backup", "--out", str(backup))
            assert "backup written" in out and "store sqlite" in out
            await wait_for_condition(
                lambda: call.host.media.frames_from(call.patient.participant_id, "video") > flowing_before + 30,
                timeout_s=20, what="the call still flowing after the backup")
            # never overwrites a file
            err = _refused({**env, "TELECONSULT_BACKUP_PASSPHRASE": PASSPHRASE}, "backup", "--out", str(backup))
            assert "already exists" in err
        assert oct(backup.stat().st_mode & 0o777) == "0o600"
        raw = backup.read_bytes()
        assert b"SQLite format" not in raw and creds.email.encode() not in raw  # encrypted

    # the disk died: the data directory is empty (the recordings directory survived: ciphertext)
    shutil.rmtree(data)
    data.mkdir(mode=0o700)
    good_file = tmp_path / "pass.txt"
    good_file.write_text(PASSPHRASE + "\n")
    bad_file = tmp_path / "wrong.txt"
    bad_file.write_text("not the passphrase at all\n")

    damaged = tmp_path / "damaged.tcbak"
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    damaged.write_bytes(bytes(flipped))
    truncated = tmp_path / "truncated.tcbak"
    truncated.write_bytes(raw[:-100])
    foreign = tmp_path / "foreign.tcbak"
    foreign.write_bytes(b"PK\x03\x04 this is a zip file, not a backup" * 10)
    header_altered = tmp_path / "header.tcbak"
    altered = bytearray(raw)
    altered[30] ^= 0x01  # a salt byte
    header_altered.write_bytes(bytes(altered))
    for path, passphrase_file, expected in (
        (backup, bad_file, "wrong passphrase"),
        (header_altered, good_file, "wrong passphrase for this backup (or its header was altered)"),
        (damaged, good_file, "corrupted"),
        (truncated, good_file, "truncated"),
        (foreign, good_file, "not a teleconsult backup"),
        (tmp_path / "missing.tcbak", good_file, "cannot read"),
    ):
        err = _refused(env, "restore", str(path), "--passphrase-file", str(passphrase_file))
        assert expected in err, (path.name, err)
        assert list(data.iterdir()) == [], f"{path.name} left files behind"

    out = _ok(env, "restore", str(backup), "--passphrase-file", str(good_file))
    assert "restored 3 files" in out
    assert {p.name for p in data.iterdir()} == {"teleconsult.sqlite3", "app_secret.key", "kek.json"}
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in data.iterdir())
    # a second restore onto the now live directory is refused, and changes nothing
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    err = _refused(env, "restore", str(backup), "--passphrase-file", str(good_file))
    assert "not empty" in err
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before

    assert "audit log intact" in _ok(env, "audit", "verify")
    audit = [json.loads(line) for line in _ok(env, "audit", "export").splitlines()]
    actions = [(body["action"], body["outcome"]) for body in (json.loads(e["body"]) for e in audit)]
    assert actions[-2:] == [("backup.create", "started"), ("backup.restore", "ok")], actions[-5:]
    _ok(env, "recordings", "export", recording_id, "--out", str(tmp_path / "export"))
    webms = sorted((tmp_path / "export").glob("*.webm"))
    assert webms, list((tmp_path / "export").iterdir())
    for webm in webms:
        with av.open(str(webm)) as container:
            assert container.streams.video and container.streams.audio
            decoded = sum(1 for _ in container.decode(video=0))
        assert decoded >= 30, (webm.name, decoded)

    with running_server(tmp_path) as server:
        api = await ApiClient.open(server.base_url)
        try:
            # the code of the first login was consumed (and that is in the backup too): the
            # next step's code, which the ±1 step window accepts
            await api.post("/api/login", {"email": creds.email, "password": creds.password})
            body = await api.post("/api/login/mfa", {"code": totp_code(creds.totp_secret, time.time() + 30)})
            assert body["account"]["email"] == creds.email
        finally:
            await api.close()


async def test_with_redis_the_backup_holds_the_key_material_only(tmp_path: Path) -> None:
    """With Redis the store is backed up by Redis itself (docs/deployment.md); our file keeps the
    keys, restores them, and says so. (Redis itself is not contacted: nothing of it is copied.)"""
    import dataclasses

    from server.backup import create_backup, restore_backup
    from server.clock import SystemClock
    from server.config import Secret, Settings
    from server.recording.keys import Keyring

    settings = Settings(data_dir=tmp_path / "data", recordings_dir=tmp_path / "recordings",
                        redis_url=Secret("redis://127.0.0.1:6379/0"))
    settings.data_dir.mkdir(mode=0o700)
    (settings.data_dir / "app_secret.key").write_bytes(b"k" * 32)
    Keyring.load_or_create(settings.kek_path, SystemClock())
    originals = {p.name: p.read_bytes() for p in settings.data_dir.iterdir()}
    summary = create_backup(settings, tmp_path / "keys.tcbak", PASSPHRASE, SystemClock())
    assert summary.store == "redis" and set(summary.files) == {"keys/app_secret.key", "keys/kek.json"}
    restored = dataclasses.replace(settings, data_dir=tmp_path / "new-data")
    result = restore_backup(restored, tmp_path / "keys.tcbak", PASSPHRASE)
    assert result.store == "redis"
    assert {p.name: p.read_bytes() for p in restored.data_dir.iterdir()} == originals
