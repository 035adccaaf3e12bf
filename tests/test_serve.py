"""`teleconsult serve` as a clinic runs it: one process, embedded store, data kept across restarts."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.server_process import free_port, run_cli, running_server, server_env


def test_serves_health_with_no_other_service_and_keeps_data_across_restart(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    for _ in range(2):
        with running_server(tmp_path) as server:
            with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=5) as response:
                assert response.status == 200
            with urllib.request.urlopen(f"{server.base_url}/readyz", timeout=5) as response:
                assert json.loads(response.read())["status"] == "ready"
        assert server.process.returncode == 0, server.log_text()
    exported = run_cli(["audit", "export"], env)
    assert exported.returncode == 0, exported.stderr
    actions = [json.loads(json.loads(line)["body"])["action"] for line in exported.stdout.splitlines()]
    starts = [a for a in actions if a == "system.start"]
    assert len(starts) == 2  # the first run's entry survived the restart
    verified = run_cli(["audit", "verify"], env)
    assert verified.returncode == 0 and "intact" in verified.stdout
    data_dir = tmp_path / "data"
    assert data_dir.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("extra_env", "args", "fragment"),
    [
        ({}, ["--port", "99999"], "TELECONSULT_PORT"),
        ({"TELECONSULT_TLS_CERT": "/nonexistent/cert.pem", "TELECONSULT_TLS_KEY": "/nonexistent/key.pem"}, [],
         "TELECONSULT_TLS_CERT"),
        ({"TELECONSULT_REDIS_URL": "redis://:pw-not-shown@127.0.0.1:1/0"}, [], "TELECONSULT_REDIS_URL"),
    ],
)
def test_invalid_configuration_exits_with_one_clear_line(
    tmp_path: Path, extra_env: dict[str, str], args: list[str], fragment: str
) -> None:
    result = run_cli(["serve", "--port", str(free_port()), *args], server_env(tmp_path, extra_env), timeout_s=30)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "pw-not-shown" not in result.stderr


def test_unreadable_tls_key_is_named(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("secret")
    key.chmod(0)
    result = run_cli(["serve", "--port", str(free_port()), "--tls-cert", str(cert), "--tls-key", str(key)],
                     server_env(tmp_path), timeout_s=30)
    assert result.returncode != 0
    # root can read a 0-mode file; then the key is read but is not a key: still one clear line.
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "TLS" in result.stderr or "TELECONSULT_TLS_KEY" in result.stderr


def test_self_signed_tls_is_generated_once_and_reused(tmp_path: Path) -> None:
    import ssl

    with running_server(tmp_path, args=["--tls-self-signed"]) as server:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # test only: the certificate is self-signed
        with urllib.request.urlopen(f"https://localhost:{server.port}/healthz", context=ctx, timeout=5) as r:
            assert r.status == 200
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    cert = tmp_path / "data" / "tls-self-signed.crt"
    first = cert.read_bytes()
    with running_server(tmp_path, args=["--tls-self-signed"]):
        pass
    assert cert.read_bytes() == first
    assert (tmp_path / "data" / "tls-self-signed.key").stat().st_mode & 0o777 == 0o600
