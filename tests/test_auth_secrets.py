"""Secrets at rest and in logs; password policy; TOTP window; the app secret key file."""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path

import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from client.api import totp_code
from server.api.app import create_app
from server.auth.passwords import hash_password, verify_password
from server.auth.secretbox import KEY_FILE_NAME, SecretBox, SecretBoxError
from server.auth.totp import verify_totp
from server.clock import ManualClock
from server.config import Settings
from server.store.base import Store
from server.store.sqlite import SQLiteStore
from tests.helpers.auth_helpers import csrf_headers, login_staff

PASSWORD = "grey heron over the marsh"


async def test_totp_secret_never_in_clear_in_the_database_nor_in_logs(
    settings: Settings, tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    db_dir = tmp_path / "db"
    store = await SQLiteStore.open(db_dir / "teleconsult.sqlite3")
    try:
        async with TestClient(TestServer(create_app(settings, store=store, clock=clock))) as client:
            token = re.findall(r"/enrol#(\S+)", capsys.readouterr().out)[0]
            headers = await csrf_headers(client)
            started = await (await client.post("/api/enrol/start", json={"token": token},
                                               headers=headers)).json()
            secret = started["totp_secret"]
            finish = await client.post("/api/enrol/finish", headers=headers, json={
                "enrolment_id": started["enrolment_id"], "password": PASSWORD,
                "code": totp_code(secret, clock.now()), "email": "root@example.test", "display_name": "Root",
            })
            codes = (await finish.json())["recovery_codes"]
            clock.advance(30)
            await login_staff(client, email="root@example.test", password=PASSWORD, totp_secret=secret,
                              clock=clock)
            session_cookie = next(m.value for m in client.session.cookie_jar if m.key == "tc_session")
    finally:
        await store.close()
    stored = b"".join(p.read_bytes() for p in db_dir.iterdir() if p.is_file())
    logged = caplog.text + capsys.readouterr().err
    assert caplog.records, "the flow logged nothing at all: the scan would prove nothing"
    for needle in (secret, secret.lower(), PASSWORD, token, session_cookie, *codes):
        assert needle.encode() not in stored, "a secret is stored in clear"
        assert needle not in logged, "a secret reached the log"
    assert "root@example.test" not in logged
    assert b"$argon2id$" in stored  # the password is there, hashed
    assert (settings.data_dir / KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_secret_box_binds_owner_and_keeps_its_key(tmp_path: Path) -> None:
    box = SecretBox.load_or_create(tmp_path)
    sealed = box.seal("JBSWY3DPEHPK3PXP", owner="acc_1")
    assert "JBSWY3DPEHPK3PXP" not in sealed and box.open(sealed, owner="acc_1") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError):
        box.open(sealed, owner="acc_2")
    assert SecretBox.load_or_create(tmp_path).open(sealed, owner="acc_1") == "JBSWY3DPEHPK3PXP"
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert "key" not in repr(box).replace("<key hidden>", "")


async def test_argon2id_hash_verifies_and_rejects() -> None:
    encoded = await hash_password(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await verify_password(PASSWORD, encoded)
    assert not await verify_password(PASSWORD + "!", encoded)
    assert not await verify_password(PASSWORD, None)


async def test_totp_accepts_one_step_either_side_once_and_nothing_further(
    store: Store, clock: ManualClock
) -> None:
    secret = pyotp.random_base32()
    now = clock.now()
    for offset in (-30, 0, 30):
        code = totp_code(secret, now + offset)
        assert await verify_totp(store, clock, owner="acc_t", secret=secret, code=code)
        assert not await verify_totp(store, clock, owner="acc_t", secret=secret, code=code)
    for offset in (-60, 60):
        assert not await verify_totp(store, clock, owner="acc_u", secret=secret,
                                     code=totp_code(secret, now + offset))
    assert not await verify_totp(store, clock, owner="acc_u", secret=secret, code="12345")
    assert not await verify_totp(store, clock, owner="acc_u", secret=secret, code="abcdef")
