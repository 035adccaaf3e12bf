"""Administrator commands: audit (and, registered by their features, users, recordings, keys)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .clock import SystemClock
from .config import Settings

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


async def _audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    from .audit import verify_command
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        return await verify_command(store, SystemClock(), sys.stdout)
    finally:
        await store.close()


async def _audit_export(settings: Settings, args: argparse.Namespace) -> int:
    from .audit import export_command
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        return await export_command(store, SystemClock(), sys.stdout)
    finally:
        await store.close()


def register_admin_commands(sub: Any, commands: dict[str, Command]) -> None:
    audit = sub.add_parser("audit", help="verify or export the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="recompute the hash chain")
    verify.set_defaults(command_key="audit verify")
    export = audit_sub.add_parser("export", help="write the log as JSON lines")
    export.set_defaults(command_key="audit export")
    commands["audit verify"] = _audit_verify
    commands["audit export"] = _audit_export

    from .cli_users import register_user_commands

    register_user_commands(sub, commands)
    from .cli_recordings import register_recording_commands

    register_recording_commands(sub, commands)
