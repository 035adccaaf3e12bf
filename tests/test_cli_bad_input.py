"""Every CLI command, given bad input, answers with one clear line on stderr, a non-zero exit
code and no traceback (issue #12.5). The commands come from the CLI's own parser, so a command
added later is walked too."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from server.cli import build_parser
from tests.helpers.server_process import run_cli, server_env

BAD_IDS = ["../../etc/passwd", "x" * 41, "", "a b", "Jane", "c_ok\n2"]
# Plausible values for the options a command requires, so its positional argument is reached.
OPTION_VALUES = {"--out": "exported", "--email": "someone@example.org", "--role": "doctor",
                 "--url": "https://hooks.example.org/teleconsult", "--event": "consultation.ended",
                 "--recording-key": "clinic-recording-key.pem"}


def _leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(prefix, parser)]
    for name, child in subs[0].choices.items():
        found.extend(_leaf_commands(child, (*prefix, name)))
    return found


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser, bad: str) -> list[str] | None:
    """The command with `bad` in every positional argument and plausible required options;
    None when the command takes no positional argument."""
    positional = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
    if not positional:
        return None
    argv = [*path, *(bad for _ in positional)]
    for action in parser._actions:
        if action.required and action.option_strings:
            argv += [action.option_strings[0], OPTION_VALUES[action.option_strings[0]]]
    return argv


def _assert_one_clear_line(argv: list[str], env: dict[str, str]) -> None:
    result = run_cli(argv, env, timeout_s=60)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    where = f"teleconsult {' '.join(map(repr, argv))}: exit {result.returncode}, stderr {result.stderr!r}"
    assert result.returncode != 0, where
    assert "Traceback" not in result.stderr, where
    assert len(lines) == 1 and lines[0].startswith("teleconsult"), where


COMMANDS = [path for path, _ in _leaf_commands(build_parser()[0])]


def test_the_walk_sees_every_command() -> None:
    assert {("recordings", "export"), ("user", "disable"), ("audit", "verify"), ("serve",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_bad_input_gives_one_clear_line(path: tuple[str, ...], tmp_path: Path) -> None:
    env = server_env(tmp_path)
    parser = dict(_leaf_commands(build_parser()[0]))[path]
    _assert_one_clear_line([*path, "--no-such-option"], env)
    for bad in BAD_IDS:
        argv = _argv(path, parser, bad)
        if argv is None:
            break
        _assert_one_clear_line(argv, env)
    argv = _argv(path, parser, "r_0123456789abcdef")  # a well-formed id of nothing
    if argv is not None:
        _assert_one_clear_line(argv, env)


def test_bad_option_values_give_one_clear_line(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    for argv in (["user", "add", "--email", "not-an-email", "--role", "doctor"],
                 ["user", "add", "--email", "a@example.org", "--role", "root"],
                 ["serve", "--port", "not-a-port"],
                 ["recordings", "export", "r_0123456789abcdef", "--out", "/proc/no/such/dir"]):
        _assert_one_clear_line(argv, env)
