"""Recordings over HTTP (docs/api.md "Recordings"). The recording services (keyring from
`Settings.kek_path`, keys, service, consent evidence) are composed in services.py. Routes:

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
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from ..consultations.models import StaffActor
from ..errors import Conflict, InvalidInput, NotFound
from ..recording.crypto import DecryptResult, RecordingCryptoError, iter_chunks
from ..recording.service import RECORDING_KIND
from .auth_context import StaffPrincipal, require_recent_auth, require_staff
from .bodies import NoBody, read_body
from .keys import AUDIT, CLOCK, HUB, RECORDINGS, STORE

_FILE_NAME = re.compile(r"^[0-9]{3}-[A-Za-z0-9_-]{1,64}\.webm$")
routes = web.RouteTableDef()


def _actor(principal: StaffPrincipal) -> StaffActor:
    return StaffActor(principal.account_id, principal.role, principal.session_id_hash)


async def _visible_consultations(request: web.Request, actor: StaffActor) -> set[str] | None:
    """Consultation ids whose recordings this actor may see; None = all (admin)."""
    if actor.is_admin:
        return None
    return {c.id for c in await request.app[HUB].services.consultations.list_for(actor)}


async def _recording_for(request: web.Request, actor: StaffActor) -> dict[str, Any]:
    rid = request.match_info["rid"]
    doc = await request.app[STORE].get_doc(RECORDING_KIND, rid)
    if doc is None:
        raise NotFound("No such recording.", code="recording_not_found")
    try:
        await request.app[HUB].services.consultations.get_for(str(doc["consultation_id"]), actor)
    except NotFound:
        raise NotFound("No such recording.", code="recording_not_found") from None
    return doc


HOST_PARTICIPANT = "host"  # the doctor's participant id in a consultation (signalling/hub.py)


async def _who(request: web.Request, consultation_id: str) -> dict[str, tuple[str, str]]:
    """participant id -> (role, display name), for the page's labels only (never logged)."""
    try:
        people = await request.app[HUB].services.participants.list_for(consultation_id)
    except NotFound:
        return {}
    return {p.participant_id: (p.role.value, p.display_name) for p in people}


def _public(doc: dict[str, Any], who: dict[str, tuple[str, str]]) -> dict[str, Any]:
    files = doc.get("files", [])
    # The true length: the recording's own timeline (pauses removed), never the sum of files;
    # records from before it was stored: the latest end of any file.
    duration = doc.get("duration_ms")
    if duration is None:
        duration = max((int(f.get("offset_ms") or 0) + int(f["duration_ms"]) for f in files), default=0)

    def label(pid: str) -> dict[str, str | None]:
        if pid == HOST_PARTICIPANT:
            return {"role": "doctor", "display_name": None}
        role, name = who.get(pid, ("participant", ""))
        return {"role": role, "display_name": name or None}

    return {
        "id": doc["id"], "consultation_id": doc["consultation_id"],
        "created_at": doc["created_at"], "stopped_at": doc.get("stopped_at"),
        "state": doc["state"], "duration_ms": duration,
        "e2ee": bool(doc.get("e2ee")),  # True: the download is the sealed bundle (docs/e2ee.md)
        "interrupted": bool(doc.get("interrupted")),  # its server stopped while recording
        "files": [{"name": str(f["file"]).removesuffix(".enc"),
                   "participant_id": f["participant_id"], "duration_ms": f["duration_ms"],
                   "offset_ms": int(f.get("offset_ms") or 0), **label(str(f["participant_id"]))}
                  for f in files],
    }


@routes.get("/api/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    actor = _actor(await require_staff(request))
    visible = await _visible_consultations(request, actor)
    docs = await request.app[STORE].list_docs(RECORDING_KIND)
    mine = [d for d in docs if visible is None or str(d["consultation_id"]) in visible]
    mine.sort(key=lambda d: float(d["created_at"]), reverse=True)
    return web.json_response([_public(d, await _who(request, str(d["consultation_id"]))) for d in mine])


@routes.get("/api/recordings/{rid}/download")
async def download_recording(request: web.Request) -> web.StreamResponse:
    principal = await require_recent_auth(request)
    actor = _actor(principal)
    doc = await _recording_for(request, actor)
    rid, cid = str(doc["id"]), str(doc["consultation_id"])
    if doc["state"] != "stopped":
        raise Conflict("The recording is still running.", code="recording_running")
    if doc.get("e2ee"):
        return await _download_sealed(request, actor, rid, cid)
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


async def _download_sealed(request: web.Request, actor: StaffActor, rid: str,
                           cid: str) -> web.StreamResponse:
    """An E2EE recording downloads as its sealed bundle (docs/e2ee.md): the server removes its
    own layer; the frames stay end-to-end encrypted until `teleconsult recordings open`
    runs with the clinic's private key on the clinic's computer."""
    from ..recording.escrow import EscrowLog

    services = request.app[RECORDINGS]
    with tempfile.TemporaryDirectory(dir=services.recordings_dir, prefix=".sealed-") as tmp:
        bundle = Path(tmp) / "bundle.tar"
        await services.service.export_sealed(rid, bundle, EscrowLog(request.app[STORE],
                                                                    request.app[CLOCK]))
        await request.app[AUDIT].record("recording.download", actor=actor.account_id,
                                        target={"id": rid, "file": "sealed"}, consultation_id=cid)
        response = web.StreamResponse(headers={
            "Content-Type": "application/x-tar",
            "Content-Disposition": f'attachment; filename="{rid}-sealed.tar"',
        })
        await response.prepare(request)
        src = await asyncio.to_thread(bundle.open, "rb")
        try:
            while chunk := await asyncio.to_thread(src.read, 256 * 1024):
                await response.write(chunk)
        finally:
            await asyncio.to_thread(src.close)
        await response.write_eof()
        return response


@routes.delete("/api/recordings/{rid}")
async def delete_recording(request: web.Request) -> web.Response:
    await read_body(request, NoBody)
    actor = _actor(await require_recent_auth(request))
    doc = await _recording_for(request, actor)
    if doc["state"] != "stopped":
        raise Conflict("Stop the recording before deleting it.", code="recording_running")
    await request.app[RECORDINGS].service.delete(str(doc["id"]))
    await request.app[AUDIT].record("recording.delete", actor=actor.account_id,
                                    target=str(doc["id"]),
                                    consultation_id=str(doc["consultation_id"]))
    return web.Response(status=204)
