"""Exporting end-to-end encrypted recordings (docs/e2ee.md "Export"), layer 3.

Two layers protect an E2EE recording: the server's (the encrypted file format under the
recording's data key, wrapped by the KEK) and the participants' (every frame encrypted with a
sender's media key, escrowed to the clinic's recording public key). The server can remove only
the first:

- `write_sealed_bundle` (on the server): a tar holding `bundle.json` (the recording's record,
  its manifest, the escrow records) and each participant's WebM with the outer layer removed
  and the frames still E2EE — safe to move, useless without the clinic's private key;
- `open_bundle` (on the clinic's computer, with the private recording key): unwraps every
  escrowed media key, then, per WebM, demuxes with av, decrypts each packet's frame with the key
  for (the file's participant, the frame's key id) and remuxes — no re-encoding. Frames whose
  key is missing (or that fail authentication) are left out, counted and reported.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ..errors import DomainError, InvalidInput
from .e2ee_format import FrameError, escrow_unwrap, frame_key_id, open_frame
from .escrow import EscrowRecord

BUNDLE_FORMAT = "teleconsult-sealed-recording"
BUNDLE_INDEX = "bundle.json"


class RecordingKeyError(DomainError):
    status = 422
    code = "recording_key_invalid"


@dataclass
class FileReport:
    name: str
    participant_id: str
    video_frames: int = 0
    audio_frames: int = 0
    clear_frames: int = 0  # not E2EE (written while the call ran hop by hop)
    missing_key: int = 0
    failed_auth: int = 0
    key_ids: set[int] = field(default_factory=set)

    def line(self) -> str:
        return (f"{self.name}: {self.video_frames} video, {self.audio_frames} audio frames"
                + (f"; {self.missing_key} without their key" if self.missing_key else "")
                + (f"; {self.failed_auth} failed authentication" if self.failed_auth else ""))


def write_sealed_bundle(dest: Path, index: dict[str, Any], files: dict[str, Path]) -> None:
    """`files`: WebM name -> a file holding it (outer layer removed, frames still E2EE).
    Never overwrites `dest`."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        body = json.dumps({"format": BUNDLE_FORMAT, "version": 1, **index}, indent=2,
                          sort_keys=True).encode()
        info = tarfile.TarInfo(BUNDLE_INDEX)
        info.size, info.mode = len(body), 0o600
        tar.addfile(info, io.BytesIO(body))
        for name, path in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = path.stat().st_size, 0o600
            with open(path, "rb") as fh:
                tar.addfile(info, fh)


def load_private_key(path: Path, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise RecordingKeyError(f"cannot read the recording key {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise RecordingKeyError("the recording key could not be opened (wrong passphrase, "
                                "or not a teleconsult recording key)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise RecordingKeyError("the recording key is not a P-256 key")
    return key


def read_bundle(bundle: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        with tarfile.open(bundle, mode="r:") as tar:
            blobs: dict[str, bytes] = {}
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise InvalidInput(f"unexpected entry in the bundle: {member.name!r}")
                extracted = tar.extractfile(member)
                assert extracted is not None
                blobs[member.name] = extracted.read()
    except (OSError, tarfile.TarError) as exc:
        raise InvalidInput(f"{bundle} is not a sealed recording bundle ({exc})") from None
    index = json.loads(blobs.pop(BUNDLE_INDEX, b"{}") or b"{}")
    if index.get("format") != BUNDLE_FORMAT:
        raise InvalidInput(f"{bundle} is not a sealed recording bundle")
    return index, blobs


def unwrap_keys(private: ec.EllipticCurvePrivateKey, cid: str,
                records: list[EscrowRecord]) -> tuple[dict[tuple[str, int], bytes], int]:
    """(sender, key_id) -> media key; and how many records did not open."""
    keys: dict[tuple[str, int], bytes] = {}
    failed = 0
    for record in records:
        try:
            keys[(record.sender, record.key_id)] = escrow_unwrap(private, cid, record.wrap())
        except FrameError:
            failed += 1
    return keys, failed


def open_bundle(bundle: Path, private: ec.EllipticCurvePrivateKey, out_dir: Path
                ) -> tuple[list[FileReport], int]:
    """Write playable WebMs into out_dir; returns per-file reports and unopened escrow records."""
    index, files = read_bundle(bundle)
    cid = str(index["record"]["consultation_id"])
    records = [EscrowRecord.from_json(r) for r in index.get("escrow", [])]
    keys, failed = unwrap_keys(private, cid, records)
    if records and failed == len(records):
        raise RecordingKeyError("none of the escrowed media keys opens with this recording key "
                                "(is it the clinic key this recording was made with?)")
    owners = {seg["file"].removesuffix(".enc"): str(p["id"])
              for p in index.get("manifest", {}).get("participants", [])
              for seg in p.get("segments", [])}
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    reports = []
    for name in sorted(files):
        participant = owners.get(name) or name.split("-", 1)[1].removesuffix(".webm")
        sender_keys = {kid: key for (sender, kid), key in keys.items() if sender == participant}
        reports.append(decrypt_webm(files[name], out_dir / name, participant, sender_keys))
    manifest = {**index.get("manifest", {}), "opened": [r.line() for r in reports]}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return reports, failed


def decrypt_webm(data: bytes, dst: Path, participant: str, keys: dict[int, bytes]) -> FileReport:
    """Demux, decrypt each frame, remux into dst (same streams, no re-encoding)."""
    report = FileReport(dst.name, participant)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, av.open(io.BytesIO(data), "r") as src, \
            av.open(raw, "w", format="webm") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in src.streams
                   if s.type in ("audio", "video")}
        for packet in src.demux():
            stream = mapping.get(packet.stream.index)
            if stream is None or packet.size == 0:
                continue
            kind = "audio" if packet.stream.type == "audio" else "video"
            frame = bytes(packet)
            key_id = frame_key_id(frame)
            if key_id is None:
                plain = frame
                report.clear_frames += 1
            else:
                key = keys.get(key_id)
                if key is None:
                    report.missing_key += 1
                    continue
                try:
                    plain = open_frame(kind, frame, key)
                except FrameError:
                    report.failed_auth += 1
                    continue
                report.key_ids.add(key_id)
            copy = av.Packet(plain)
            copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
            copy.is_keyframe = packet.is_keyframe
            copy.stream = stream
            out.mux(copy)
            if kind == "video":
                report.video_frames += 1
            else:
                report.audio_frames += 1
    return report
