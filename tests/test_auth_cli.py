"""`teleconsult user …` against the embedded store, in-process through cli.main."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.cli import main


def _config(tmp_path: Path) -> str:
    cfg = tmp_path / "teleconsult.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\nrecordings_dir = "{tmp_path / "rec"}"\n'
                   'public_url = "https://clinic.example.test"\n')
    return str(cfg)


def test_user_add_list_disable_enable_reset_mfa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    assert main(["--config", cfg, "user", "add", "--email", "Dr.X@Example.test", "--role", "doctor",
                 "--name", "Dr X"]) == 0
    out = capsys.readouterr()
    assert re.search(r"https://clinic\.example\.test/enrol#[A-Za-z0-9_-]{43}$", out.out.strip())
    account_id = re.findall(r"created (acc_[0-9a-f]+)", out.out)[0]
    assert "enrol#" not in out.err  # the link goes to stdout only, never the log (stderr)

    assert main(["--config", cfg, "user", "list"]) == 0
    assert f"{account_id}\tdoctor\tpending-enrolment\tdr.x@example.test" in capsys.readouterr().out
    assert main(["--config", cfg, "user", "add", "--email", "dr.x@example.test", "--role", "admin"]) == 1
    assert "already exists" in capsys.readouterr().err

    assert main(["--config", cfg, "user", "disable", "dr.x@example.test"]) == 0
    assert main(["--config", cfg, "user", "list"]) == 0
    assert "\tdisabled\t" in capsys.readouterr().out
    assert main(["--config", cfg, "user", "reset-mfa", account_id]) == 1  # enable first
    assert main(["--config", cfg, "user", "enable", account_id]) == 0
    assert main(["--config", cfg, "user", "reset-mfa", account_id]) == 0
    assert "/enrol#" in capsys.readouterr().out
    assert main(["--config", cfg, "user", "disable", "nobody@example.test"]) == 1
    assert main(["--config", cfg, "audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out


def test_user_add_without_a_public_url_says_it_cannot_know_the_address(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No guessed http://localhost:8080 (the server may run on another port or behind a proxy):
    the path, and a plain sentence saying what to put in front of it."""
    cfg = tmp_path / "teleconsult.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\nrecordings_dir = "{tmp_path / "rec"}"\nport = 8095\n')
    assert main(["--config", str(cfg), "user", "add", "--email", "dr.y@example.test", "--role", "doctor"]) == 0
    out = capsys.readouterr()
    assert re.search(r"once: /enrol#[A-Za-z0-9_-]{43}$", out.out.strip()), out.out
    assert "8080" not in out.out and "localhost" not in out.out
    assert "public URL is not configured" in out.err and "enrol#" not in out.err
