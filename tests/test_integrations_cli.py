"""`teleconsult integrations …` as an operator runs it: the key and the secret are printed once
and never listed; bad input is a clear error; rotation prints the overlap; all audited."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.integration_helpers import cli_create_integration, cli_webhook_set
from tests.helpers.server_process import run_cli, server_env


def test_integrations_cli(tmp_path: Path) -> None:
    env = server_env(tmp_path, {"TELECONSULT_WEBHOOK_ALLOW_HTTP_LOOPBACK": "0"})
    made = cli_create_integration(env, ["consultations:read"])
    bad = run_cli(["integrations", "create", "--name", "x", "--scope", "recordings:read"], env)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    http = run_cli(["integrations", "webhook-set", made.integration_id, "--url", "http://127.0.0.1:9/h",
                    "--event", "consultation.ended"], env)
    assert http.returncode == 1 and "https://" in http.stderr and "127.0.0.1" not in http.stderr
    rotate_first = run_cli(["integrations", "rotate-secret", made.integration_id], env)
    assert rotate_first.returncode == 1 and "webhook first" in rotate_first.stderr
    secret = cli_webhook_set(env, made.integration_id, "https://hooks.example/teleconsult",
                             ["consultation.ended", "recording.available"])
    again = run_cli(["integrations", "webhook-set", made.integration_id, "--url", "https://hooks.example/v2",
                     "--event", "consultation.ended"], env)
    assert again.returncode == 0 and "whsec_" not in again.stdout  # the secret is not shown again
    rotated = run_cli(["integrations", "rotate-secret", made.integration_id, "--overlap-s", "3600"], env)
    assert rotated.returncode == 0 and "whsec_" in rotated.stdout and secret not in rotated.stdout
    assert "previous secret also signs until" in rotated.stdout
    assert run_cli(["integrations", "revoke", made.integration_id], env).returncode == 0
    assert run_cli(["integrations", "revoke", "ik_unknown"], env).returncode == 1
    listed = run_cli(["integrations", "list", "--json"], env)
    assert listed.returncode == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["status"], r["scopes"]) for r in rows] == [
        (made.integration_id, "revoked", ["consultations:read"])]
    assert rows[0]["webhook"] == {"url": "https://hooks.example/v2", "events": ["consultation.ended"]}
    assert made.api_key not in listed.stdout and "whsec_" not in listed.stdout
    exported = run_cli(["audit", "export"], env)
    actions = [json.loads(json.loads(line)["body"])["action"] for line in exported.stdout.splitlines()]
    for action in ("integration.create", "integration.webhook_set", "integration.secret_rotate",
                   "integration.revoke"):
        assert action in actions
    assert made.api_key not in exported.stdout and secret not in exported.stdout
