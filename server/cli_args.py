"""The CLI's boundary: argument types that refuse malformed input before any command runs, the
parser whose errors are one line on stderr (exit 2), and how a command is registered on it."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from .cli_context import Command

# The ids the server hands out (accounts, consultations, recordings): the audit log's id rule.
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")


class CliParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: `teleconsult <command>: <what>`."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def object_id(what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not _ID.fullmatch(raw):
            raise argparse.ArgumentTypeError(f"not a {what} id (1-40 characters of A-Z a-z 0-9 _ . : -)")
        return raw

    parse.__name__ = f"{what} id"
    return parse


def account_ref(raw: str) -> str:
    """An account id or an e-mail address."""
    if _ID.fullmatch(raw) or _EMAIL.fullmatch(raw):
        return raw
    raise argparse.ArgumentTypeError("not an account id or an e-mail address")


def email_address(raw: str) -> str:
    if _EMAIL.fullmatch(raw):
        return raw
    raise argparse.ArgumentTypeError("not an e-mail address")


def add_command(parsers: Any, commands: dict[str, Command], key: str, help: str,
                run: Command) -> argparse.ArgumentParser:
    """`teleconsult <key>` (its last word added to `parsers`) runs `run`: `commands[key]`, the
    key `cli.main` dispatches on. Returns the parser, for the command's arguments."""
    parser: argparse.ArgumentParser = parsers.add_parser(key.rpartition(" ")[2], help=help)
    parser.set_defaults(command_key=key)
    commands[key] = run
    return parser


class CommandGroup:
    """`teleconsult <group> <name>`: a command with sub-commands, each added with `add`."""

    def __init__(self, sub: Any, commands: dict[str, Command], group: str, help: str) -> None:
        self.group = group
        self._commands = commands
        parser = sub.add_parser(group, help=help)
        self._parsers = parser.add_subparsers(dest=f"{group}_command", required=True)

    def add(self, name: str, help: str, run: Command) -> argparse.ArgumentParser:
        return add_command(self._parsers, self._commands, f"{self.group} {name}", help, run)
