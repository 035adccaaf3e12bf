"""Recordings over HTTP (docs/api.md "Recordings") and the recording feature's wiring.

`setup_recordings(app)` loads (at first start: creates) the key-encryption keyring from
`Settings.kek_path`, builds the recording services in a cleanup context, and adds:

- `GET /api/recordings` — a doctor sees the recordings of their own consultations, an admin all;
- `GET /api/recordings/{rid}/download[?file=NAME]` — re-authentication within
  `Settings.reauth_window_s` required; streams one decrypted WebM, decrypting chunk by chunk
  in memory (plaintext never touches the disk); audited;
- `DELETE /api/recordings/{rid}` — re-authentication required; crypto-shredding; audited.

Unknown recordings and recordings of someone else's consultation both answer 404.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import Conflict, InvalidInput, NotFound
from ..recording.crypto import DecryptResult, RecordingCryptoError, iter_chunks
from ..recording.evidence import ConsentEvidence
from ..recording.keys import Keyring, RecordingKeys
from ..recording.service import RECORDING_KIND, RecordingService
from ..rooms.models import StaffActor
from .auth_context import StaffPrincipal, require_recent_auth, require_staff
from .keys import AUDIT, CLOCK, SETTINGS, STORE


@dataclass(frozen=True)
class RecordingServices:
    keyring: Keyring
    keys: RecordingKeys
    service: RecordingService
    evidence: ConsentEvidence
    recordings_dir: Path


RECORDINGS = web.AppKey("recordings", RecordingServices)
_FILE_NAME = re.compile(r"^[0-9]{3}-[A-Za-z0-9_-]{1,64}\.webm$")
routes = web.RouteTableDef()


def _actor(principal: StaffPrincipal) -> StaffActor:
    return StaffActor(principal.account_id, principal.role, principal.session_id_hash)


async def _visible_consultations(request: web.Request, actor: StaffActor) -> set[str] | None:
    """Consultation ids whose recordings this actor may see; None = all (admin)."""
    if actor.is_admin:
        return None
    from .consultation_routes import HUB

    return {c.id for c in await request.app[HUB].services.consultations.list_for(actor)}


async def _recording_for(request: web.Request, actor: StaffActor) -> dict[str, Any]:
    rid = request.match_info["rid"]
    doc = await request.app[STORE].get_doc(RECORDING_KIND, rid)
    if doc is None:
        raise NotFound("No such recording.", code="recording_not_found")
    from .consultation_routes import HUB

    try:
        await request.app[HUB].services.consultations.get_for(str(doc["consultation_id"]), actor)
    except NotFound:
        raise NotFound("No such recording.", code="recording_not_found") from None
    return doc


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["id"], "consultation_id": doc["consultation_id"],
        "created_at": doc["created_at"], "stopped_at": doc.get("stopped_at"),
        "state": doc["state"],
        "files": [{"name": str(f["file"]).removesuffix(".enc"),
                   "participant_id": f["participant_id"], "duration_ms": f["duration_ms"]}
                  for f in doc.get("files", [])],
    }


@routes.get("/api/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    actor = _actor(await require_staff(request))
    visible = await _visible_consultations(request, actor)
    docs = await request.app[STORE].list_docs(RECORDING_KIND)
    mine = [d for d in docs if visible is None or str(d["consultation_id"]) in visible]
    mine.sort(key=lambda d: float(d["created_at"]), reverse=True)
    return web.json_response([_public(d) for d in mine])


@routes.get("/api/recordings/{rid}/download")
async def download_recording(request: web.Request) -> web.StreamResponse:
    principal = await require_recent_auth(request)
    actor = _actor(principal)
    doc = await _recording_for(request, actor)
    rid, cid = str(doc["id"]), str(doc["consultation_id"])
    if doc["state"] != "stopped":
        raise Conflict("The recording is still running.", code="recording_running")
    names = [str(f["file"]).removesuffix(".enc") for f in doc.get("files", [])]
    name = request.query.get("file") or (names[0] if names else "")
    if not _FILE_NAME.fullmatch(name) or name not in names:
        raise InvalidInput("Choose one of the recording's files.", code="invalid_file")
    services = request.app[RECORDINGS]
    key = await services.keys.get(rid)
    path = services.recordings_dir / str(doc["directory"]) / f"{name}.enc"
    audit = request.app[AUDIT]
    try:
        src = await asyncio.to_thread(path.open, "rb")
    except FileNotFoundError:
        raise NotFound("The recording's file is missing.", code="recording_file_missing") from None
    results: list[DecryptResult] = []
    try:
        chunks: Iterator[bytes] = iter_chunks(src, key, results)
        first = await asyncio.to_thread(next, chunks, b"")  # header/key checks before 200
        await audit.record("recording.download", actor=actor.account_id,
                           target={"id": rid, "file": name.removesuffix(".webm")},
                           consultation_id=cid)
        response = web.StreamResponse(headers={
            "Content-Type": "video/webm",
            "Content-Disposition": f'attachment; filename="{rid}-{name}"',
        })
        await response.prepare(request)
        chunk = first
        while chunk:
            await response.write(chunk)
            chunk = await asyncio.to_thread(next, chunks, b"")
        await response.write_eof()
        return response
    except RecordingCryptoError:
        await audit.record("recording.download", actor=actor.account_id, target=rid,
                           outcome="failed", consultation_id=cid)
        raise
    finally:
        await asyncio.to_thread(src.close)


@routes.delete("/api/recordings/{rid}")
async def delete_recording(request: web.Request) -> web.Response:
    actor = _actor(await require_recent_auth(request))
    doc = await _recording_for(request, actor)
    if doc["state"] != "stopped":
        raise Conflict("Stop the recording before deleting it.", code="recording_running")
    await request.app[RECORDINGS].service.delete(str(doc["id"]))
    await request.app[AUDIT].record("recording.delete", actor=actor.account_id,
                                    target=str(doc["id"]),
                                    consultation_id=str(doc["consultation_id"]))
    return web.Response(status=204)


def build_recording_services(app: web.Application) -> RecordingServices:
    settings, store, clock = app[SETTINGS], app[STORE], app[CLOCK]
    keyring = Keyring.load_or_create(settings.kek_path, clock)
    keys = RecordingKeys(store, keyring, clock)
    return RecordingServices(
        keyring=keyring, keys=keys,
        service=RecordingService(store, keys, settings.recordings_dir, clock,
                                 settings.recording_retention_days),
        evidence=ConsentEvidence(store, app[AUDIT]),
        recordings_dir=settings.recordings_dir)


def _wrap_media(app: web.Application, services: RecordingServices) -> None:
    """Put recording consent in front of the hub's media gateway (signalling/recording.py)."""
    from ..signalling.recording import recording_gateway
    from .consultation_routes import HUB

    hub = app[HUB]
    settings = app[SETTINGS]
    hub.media = recording_gateway(
        hub.media, store=app[STORE], keys=services.keys, evidence=services.evidence,
        recordings_dir=settings.recordings_dir, clock=app[CLOCK],
        text_version=settings.consent_text_version)


def setup_recordings(app: web.Application) -> None:
    """After setup_consultations (its hub's media gateway gets the recording layer)."""

    async def recordings_ctx(app: web.Application) -> AsyncIterator[None]:
        services = build_recording_services(app)
        app[RECORDINGS] = services
        _wrap_media(app, services)
        yield

    app.cleanup_ctx.append(recordings_ctx)
    app.router.add_routes(routes)
