"""`teleconsult recordings list|export|delete|purge|consent` and `teleconsult keys rotate`.

Export writes playable WebM files (and manifest.json) into a directory the operator chose;
delete and purge crypto-shred (data key first, then files). Every export, delete, purge and
rotation is audited with actor "cli" (ids only).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .audit import AuditLog
from .clock import SystemClock
from .config import Settings
from .errors import DomainError
from .recording.evidence import ConsentEvidence
from .recording.keys import Keyring, RecordingKeys, rotate_kek
from .recording.service import RecordingService
from .store.base import Store

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
CLI_ACTOR = "cli"


@dataclass(frozen=True)
class _Ctx:
    store: Store
    audit: AuditLog
    settings: Settings

    def service(self) -> RecordingService:
        clock = SystemClock()
        keys = RecordingKeys(self.store, Keyring.load(self.settings.kek_path), clock)
        return RecordingService(self.store, keys, self.settings.recordings_dir, clock,
                                self.settings.recording_retention_days)


def _out() -> TextIO:
    return sys.stdout


async def _run(settings: Settings, act: Callable[[_Ctx], Awaitable[int]]) -> int:
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        return await act(_Ctx(store, AuditLog(store, SystemClock()), settings))
    except DomainError as exc:
        print(f"teleconsult: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _consultation_of(ctx: _Ctx, recording_id: str) -> str | None:
    doc = await ctx.store.get_doc("recording", recording_id)
    return str(doc["consultation_id"]) if doc else None


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def act(ctx: _Ctx) -> int:
        docs = sorted(await ctx.store.list_docs("recording"),
                      key=lambda d: float(d["created_at"]))
        for d in docs:
            row = {"id": d["id"], "consultation_id": d["consultation_id"],
                   "created_at": d["created_at"], "stopped_at": d.get("stopped_at"),
                   "state": d["state"], "files": [f["file"] for f in d.get("files", [])]}
            if args.json:
                print(json.dumps(row, sort_keys=True), file=_out())
            else:
                print(f"{row['id']}\t{row['consultation_id']}\t{row['state']}\t"
                      f"{len(row['files'])} file(s)", file=_out())
        return 0

    return await _run(settings, act)


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    async def act(ctx: _Ctx) -> int:
        cid = await _consultation_of(ctx, args.recording_id)
        try:
            results = await ctx.service().export(args.recording_id, Path(args.out))
        except DomainError as exc:
            await ctx.audit.record("recording.export", actor=CLI_ACTOR, target=args.recording_id,
                                   outcome="failed", consultation_id=cid)
            raise exc
        truncated = sum(1 for r in results if r.truncated)
        await ctx.audit.record("recording.export", actor=CLI_ACTOR, target=args.recording_id,
                               outcome="truncated" if truncated else "ok", consultation_id=cid)
        print(f"exported {len(results)} file(s) of {args.recording_id} to {args.out}"
              + (f"; {truncated} truncated" if truncated else ""), file=_out())
        return 0

    return await _run(settings, act)


async def _delete(settings: Settings, args: argparse.Namespace) -> int:
    async def act(ctx: _Ctx) -> int:
        cid = await _consultation_of(ctx, args.recording_id)
        await ctx.service().delete(args.recording_id)
        await ctx.audit.record("recording.delete", actor=CLI_ACTOR, target=args.recording_id,
                               consultation_id=cid)
        print(f"deleted {args.recording_id} (data key destroyed, files removed)", file=_out())
        return 0

    return await _run(settings, act)


async def _purge(settings: Settings, args: argparse.Namespace) -> int:
    async def act(ctx: _Ctx) -> int:
        gone = await ctx.service().purge()
        for rid in gone:
            await ctx.audit.record("recording.purge", actor=CLI_ACTOR, target=rid)
        await ctx.audit.record("recording.purge_run", actor=CLI_ACTOR,
                               outcome="ok" if gone else "nothing")
        print(f"purged {len(gone)} recording(s) older than "
              f"{settings.recording_retention_days} days", file=_out())
        return 0

    return await _run(settings, act)


async def _consent(settings: Settings, args: argparse.Namespace) -> int:
    async def act(ctx: _Ctx) -> int:
        print(await ConsentEvidence(ctx.store, ctx.audit).export(args.consultation_id),
              file=_out())
        await ctx.audit.record("recording.consent_export", actor=CLI_ACTOR,
                               consultation_id=args.consultation_id)
        return 0

    return await _run(settings, act)


async def _rotate(settings: Settings, args: argparse.Namespace) -> int:
    async def act(ctx: _Ctx) -> int:
        try:
            report = await rotate_kek(settings.kek_path, ctx.store, SystemClock())
        except DomainError:
            await ctx.audit.record("keys.rotate", actor=CLI_ACTOR, outcome="failed")
            raise
        await ctx.audit.record("keys.rotate", actor=CLI_ACTOR, target={"kek": report.new_kek_id})
        print(f"new key-encryption key {report.new_kek_id}; {report.rewrapped} data key(s) "
              f"re-wrapped; dropped {', '.join(report.dropped_kek_ids) or 'none'}", file=_out())
        return 0

    return await _run(settings, act)


def register_recording_commands(sub: Any, commands: dict[str, Command]) -> None:
    rec = sub.add_parser("recordings", help="encrypted recordings")
    rec_sub = rec.add_subparsers(dest="recordings_command", required=True)
    lst = rec_sub.add_parser("list", help="list recordings")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(command_key="recordings list")
    exp = rec_sub.add_parser("export", help="decrypt a recording into playable WebM files")
    exp.add_argument("recording_id")
    exp.add_argument("--out", required=True, help="directory to write into (created)")
    exp.set_defaults(command_key="recordings export")
    dele = rec_sub.add_parser("delete", help="erase a recording (crypto-shredding)")
    dele.add_argument("recording_id")
    dele.set_defaults(command_key="recordings delete")
    rec_sub.add_parser("purge", help="erase recordings past the retention period").set_defaults(
        command_key="recordings purge")
    con = rec_sub.add_parser("consent", help="print a consultation's consent record (JSON)")
    con.add_argument("consultation_id")
    con.set_defaults(command_key="recordings consent")
    keys = sub.add_parser("keys", help="the recordings' key-encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("rotate", help="new KEK; re-wrap every data key; forget the old KEK"
                        ).set_defaults(command_key="keys rotate")
    commands.update({"recordings list": _list, "recordings export": _export,
                     "recordings delete": _delete, "recordings purge": _purge,
                     "recordings consent": _consent, "keys rotate": _rotate})
