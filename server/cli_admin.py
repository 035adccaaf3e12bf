"""Administrator commands: audit (and, registered by their features, users, recordings, keys)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from .audit import export_command, verify_command
from .cli_args import CommandGroup
from .cli_context import Command
from .clock import Clock, SystemClock
from .config import Settings
from .store.base import AuditStore


def _audit_command(run: Callable[[AuditStore, Clock, TextIO], Awaitable[int]]) -> Command:
    """`audit verify|export`: `run` over the configured store, writing on stdout."""

    async def command(settings: Settings, args: argparse.Namespace) -> int:
        from .store.factory import open_store

        store = await open_store(settings)
        try:
            return await run(store, SystemClock(), sys.stdout)
        finally:
            await store.close()

    return command


def register_admin_commands(sub: Any, commands: dict[str, Command]) -> None:
    audit = CommandGroup(sub, commands, "audit", "verify or export the audit log")
    audit.add("verify", "recompute the hash chain", _audit_command(verify_command))
    audit.add("export", "write the log as JSON lines", _audit_command(export_command))

    from .cli_users import register_user_commands

    register_user_commands(sub, commands)
    from .cli_recordings import register_recording_commands

    register_recording_commands(sub, commands)
    from .cli_backup import register_backup_commands

    register_backup_commands(sub, commands)
    from .cli_integrations import register_integration_commands

    register_integration_commands(sub, commands)
    from .cli_cluster import register_cluster_commands

    register_cluster_commands(sub, commands)
