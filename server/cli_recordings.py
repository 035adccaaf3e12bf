"""`teleconsult recordings list|export|delete|purge|consent` and `teleconsult keys rotate`.

Export writes playable WebM files (and manifest.json) into a directory the operator chose;
delete and purge crypto-shred (data key first, then files). Every export, delete, purge and
rotation is audited with actor "cli" (ids only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .audit import AuditLog
from .cli_args import CommandGroup, object_id
from .cli_context import Command, store_command
from .clock import SystemClock
from .config import Settings
from .consultations.service import KIND as CONSULTATION_KIND
from .errors import DomainError, NotFound
from .recording.combine import combine_directory
from .recording.evidence import ConsentEvidence
from .recording.keys import Keyring, RecordingKeys, rotate_kek
from .recording.service import RecordingService
from .store.base import Store

CLI_ACTOR = "cli"


@dataclass(frozen=True)
class _Ctx:
    store: Store
    audit: AuditLog
    settings: Settings

    def service(self) -> RecordingService:
        clock = SystemClock()
        keys = RecordingKeys(self.store, Keyring.load(self.settings.kek_path), clock)
        from .cli_integrations import cli_event_sink

        return RecordingService(self.store, keys, self.settings.recordings_dir, clock,
                                self.settings.recording_retention_days,
                                cli_event_sink(self.store, self.settings, self.audit))


def _out() -> TextIO:
    return sys.stdout


_recording_command = store_command(
    lambda settings, store: _Ctx(store, AuditLog(store, SystemClock()), settings))


async def _recording_audit(ctx: _Ctx, action: str, recording_id: str) -> Callable[..., Awaitable[None]]:
    """`await audit(outcome)` records `action` on `recording_id` by the CLI, with its consultation
    (looked up now, while the recording exists)."""
    doc = await ctx.store.get_doc("recording", recording_id)
    cid = str(doc["consultation_id"]) if doc else None

    async def audit(outcome: str = "ok") -> None:
        await ctx.audit.record(action, actor=CLI_ACTOR, target=recording_id, outcome=outcome,
                               consultation_id=cid)

    return audit


@_recording_command
async def _list(settings: Settings, args: argparse.Namespace, ctx: _Ctx) -> int:
    docs = sorted(await ctx.store.list_docs("recording"),
                  key=lambda d: float(d["created_at"]))
    for d in docs:
        row = {"id": d["id"], "consultation_id": d["consultation_id"],
               "created_at": d["created_at"], "stopped_at": d.get("stopped_at"),
               "state": d["state"], "files": [f["file"] for f in d.get("files", [])],
               "interrupted": bool(d.get("interrupted"))}
        if args.json:
            print(json.dumps(row, sort_keys=True), file=_out())
        else:
            state = f"{row['state']} (interrupted)" if row["interrupted"] else row["state"]
            print(f"{row['id']}\t{row['consultation_id']}\t{state}\t"
                  f"{len(row['files'])} file(s)", file=_out())
    return 0


@_recording_command
async def _export(settings: Settings, args: argparse.Namespace, ctx: _Ctx) -> int:
    audit = await _recording_audit(ctx, "recording.export", args.recording_id)
    if args.sealed or args.recording_key:
        from .cli_keys import export_e2ee

        try:
            code = await export_e2ee(settings, args, ctx.service(), ctx.store)
        except DomainError:
            await audit("failed")
            raise
        await audit("sealed" if args.sealed else "ok")
        return code
    try:
        results = await ctx.service().export(args.recording_id, Path(args.out))
    except DomainError:
        await audit("failed")
        raise
    truncated = sum(1 for r in results if r.truncated)
    await audit("truncated" if truncated else "ok")
    print(f"exported {len(results)} file(s) of {args.recording_id} to {args.out}"
          + (f"; {truncated} truncated" if truncated else ""), file=_out())
    if args.combined:
        combined = await asyncio.to_thread(combine_directory, Path(args.out))
        print(f"combined {combined.participants} participant file(s) into {combined.path}"
              f" ({combined.duration_s:.1f} s, {combined.width}x{combined.height})", file=_out())
    return 0


@_recording_command
async def _delete(settings: Settings, args: argparse.Namespace, ctx: _Ctx) -> int:
    audit = await _recording_audit(ctx, "recording.delete", args.recording_id)
    await ctx.service().delete(args.recording_id)
    await audit()
    print(f"deleted {args.recording_id} (data key destroyed, files removed)", file=_out())
    return 0


@_recording_command
async def _purge(settings: Settings, args: argparse.Namespace, ctx: _Ctx) -> int:
    gone = await ctx.service().purge()
    for rid in gone:
        await ctx.audit.record("recording.purge", actor=CLI_ACTOR, target=rid)
    await ctx.audit.record("recording.purge_run", actor=CLI_ACTOR,
                           outcome="ok" if gone else "nothing")
    print(f"purged {len(gone)} recording(s) older than "
          f"{settings.recording_retention_days} days", file=_out())
    return 0


@_recording_command
async def _consent(settings: Settings, args: argparse.Namespace, ctx: _Ctx) -> int:
    evidence = ConsentEvidence(ctx.store, ctx.audit)
    cid = args.consultation_id
    if await ctx.store.get_doc(CONSULTATION_KIND, cid) is None and not await evidence.events(cid):
        raise NotFound("No such consultation, and no consent record for it.")
    print(await evidence.export(cid), file=_out())
    await ctx.audit.record("recording.consent_export", actor=CLI_ACTOR,
                           consultation_id=args.consultation_id)
    return 0


@_recording_command
async def _rotate(settings: Settings, args: argparse.Namespace, ctx: _Ctx) -> int:
    try:
        report = await rotate_kek(settings.kek_path, ctx.store, SystemClock())
    except DomainError:
        await ctx.audit.record("keys.rotate", actor=CLI_ACTOR, outcome="failed")
        raise
    await ctx.audit.record("keys.rotate", actor=CLI_ACTOR, target={"kek": report.new_kek_id})
    print(f"new key-encryption key {report.new_kek_id}; {report.rewrapped} data key(s) "
          f"re-wrapped; dropped {', '.join(report.dropped_kek_ids) or 'none'}", file=_out())
    return 0


def register_recording_commands(sub: Any, commands: dict[str, Command]) -> None:
    rec = CommandGroup(sub, commands, "recordings", "encrypted recordings")
    lst = rec.add("list", "list recordings", _list)
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    exp = rec.add("export", "decrypt a recording into playable WebM files", _export)
    exp.add_argument("recording_id", type=object_id("recording"))
    exp.add_argument("--out", required=True,
                     help="directory to write into (created); with --sealed: the bundle file")
    exp.add_argument("--sealed", action="store_true",
                     help="E2EE recording: write the sealed bundle (frames still encrypted)")
    exp.add_argument("--recording-key", dest="recording_key",
                     help="E2EE recording: the clinic's private recording key (never on the server)")
    exp.add_argument("--passphrase-file", dest="passphrase_file")
    exp.add_argument("--combined", action="store_true",
                     help="also write combined.webm: every participant in one file (re-encoded here,"
                          " offline; E2EE: use it with `recordings open`)")
    dele = rec.add("delete", "erase a recording (crypto-shredding)", _delete)
    dele.add_argument("recording_id", type=object_id("recording"))
    rec.add("purge", "erase recordings past the retention period", _purge)
    con = rec.add("consent", "print a consultation's consent record (JSON)", _consent)
    con.add_argument("consultation_id", type=object_id("consultation"))
    keys = CommandGroup(sub, commands, "keys", "the recordings' key-encryption keys")
    keys.add("rotate", "new KEK; re-wrap every data key; forget the old KEK", _rotate)
    from .cli_keys import register_key_commands

    register_key_commands(keys, rec)
