"""`teleconsult backup --out FILE` and `teleconsult restore FILE` (docs/deployment.md "Backups").

The passphrase comes, in this order, from `--passphrase-file F` (its first line), from
TELECONSULT_BACKUP_PASSPHRASE (for unattended jobs: set it in the job's environment file,
never on a command line, which lands in shell history and `ps`), or from a prompt on the
terminal (asked twice for a backup). There is deliberately no flag taking the passphrase itself.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from .audit import AuditLog
from .backup import create_backup, restore_backup
from .backup_crypto import MIN_PASSPHRASE_CHARS, BackupError
from .cli_args import add_command
from .cli_context import Command
from .clock import SystemClock
from .config import Settings
from .errors import DomainError

CLI_ACTOR = "cli"


def _passphrase(settings: Settings, args: argparse.Namespace, *, confirm: bool) -> str:
    if args.passphrase_file is not None:
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise BackupError(
                f"cannot read the passphrase file {args.passphrase_file}: {exc.strerror}") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise BackupError(f"the passphrase file {args.passphrase_file} is empty")
        return lines[0]
    if settings.backup_passphrase:
        return settings.backup_passphrase.get()
    if not sys.stdin.isatty():
        raise BackupError("no passphrase: use --passphrase-file, TELECONSULT_BACKUP_PASSPHRASE or a terminal")
    first = getpass.getpass("Backup passphrase: ")
    if confirm:
        if len(first) < MIN_PASSPHRASE_CHARS:
            raise BackupError(f"the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
        if getpass.getpass("Again: ") != first:
            raise BackupError("the two passphrases differ")
    return first


async def _audit(settings: Settings, action: str, outcome: str) -> None:
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        await AuditLog(store, SystemClock()).record(action, actor=CLI_ACTOR, outcome=outcome)
    finally:
        await store.close()


async def _backup(settings: Settings, args: argparse.Namespace) -> int:
    try:
        passphrase = _passphrase(settings, args, confirm=True)
    except DomainError as exc:
        print(f"teleconsult: backup failed: {exc.message}", file=sys.stderr)
        return 1
    # Audited first, so the backup itself holds the record of its making.
    await _audit(settings, "backup.create", "started")
    try:
        summary = create_backup(settings, Path(args.out), passphrase, SystemClock())
    except DomainError as exc:
        await _audit(settings, "backup.create", "failed")
        print(f"teleconsult: backup failed: {exc.message}", file=sys.stderr)
        return 1
    print(f"backup written to {summary.path} ({summary.bytes_written} bytes, store {summary.store}, "
          f"{len(summary.files)} files)")
    if summary.store == "redis":
        print("the Redis data is not in this file: back it up with Redis's RDB/AOF snapshots "
              "(docs/deployment.md)")
    print("recordings are not in this file: copy the recordings directory as it is (ciphertext)")
    return 0


async def _restore(settings: Settings, args: argparse.Namespace) -> int:
    try:
        passphrase = _passphrase(settings, args, confirm=False)
        summary = restore_backup(settings, Path(args.file), passphrase)
    except DomainError as exc:
        print(f"teleconsult: restore refused: {exc.message}", file=sys.stderr)
        return 1
    if summary.store == "sqlite":
        await _audit(settings, "backup.restore", "ok")
    print(f"restored {len(summary.files)} files into {settings.data_dir} (store {summary.store}); "
          "run `teleconsult audit verify`, then start the server")
    return 0


def register_backup_commands(sub: Any, commands: dict[str, Command]) -> None:
    backup = add_command(sub, commands, "backup", "write an encrypted backup of the store and keys", _backup)
    backup.add_argument("--out", required=True, help="new file to write (never overwritten)")
    restore = add_command(sub, commands, "restore", "restore a backup onto an empty data directory", _restore)
    restore.add_argument("file", help="the backup file")
    for parser in (backup, restore):
        parser.add_argument("--passphrase-file", dest="passphrase_file", default=None,
                            help="read the passphrase from the first line of this file")
