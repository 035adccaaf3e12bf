"""E2EE recording keys and exports on the command line (docs/e2ee.md "Recording"):

- `teleconsult keys recording-keypair --out FILE [--passphrase-file F]` — on the clinic's own
  offline computer, not the server: a P-256 key pair; the private key is written as a
  passphrase-protected PKCS#8 PEM (the passphrase from the file, from
  TELECONSULT_RECORDING_KEY_PASSPHRASE, or asked twice); prints the public key (B64 raw point)
  and its fingerprint.
- `teleconsult keys recording-public-key set B64 | --file F` / `show` — on the server: the
  clinic's recording public key the host's browser wraps media keys to (audited).
- `teleconsult recordings export ID --sealed --out FILE` — on the server: the sealed bundle.
- `teleconsult recordings open FILE --recording-key KEYFILE --out DIR` — on the clinic's
  computer: playable WebMs (frames decrypted and remuxed, no re-encoding).
- `teleconsult recordings export ID --recording-key KEYFILE --out DIR` — both at once where
  the store, the recordings and the private key are all present: never on the server.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat

from .cli_args import CommandGroup
from .clock import SystemClock
from .config import Settings
from .errors import DomainError, InvalidInput
from .recording.e2ee_format import b64e, fingerprint, public_raw
from .recording.escrow import EscrowLog, RecordingKeyRegistry, parse_public_key
from .recording.sealed import load_private_key, open_bundle

MIN_PASSPHRASE = 12


def _fail(message: str) -> int:
    print(f"teleconsult: {message}", file=sys.stderr)
    return 1


def passphrase(settings: Settings, args: argparse.Namespace, *, confirm: bool) -> bytes:
    """From --passphrase-file, else TELECONSULT_RECORDING_KEY_PASSPHRASE, else a prompt."""
    if getattr(args, "passphrase_file", None):
        try:
            value = Path(args.passphrase_file).read_text().rstrip("\n")
        except OSError as exc:
            raise InvalidInput(f"cannot read {args.passphrase_file}: {exc.strerror}") from None
    elif settings.recording_key_passphrase:
        value = settings.recording_key_passphrase.get()
    elif not sys.stdin.isatty():
        raise InvalidInput("no passphrase: give --passphrase-file or set "
                           "TELECONSULT_RECORDING_KEY_PASSPHRASE (no terminal to ask on)")
    else:
        value = getpass.getpass("Recording key passphrase: ")
        if confirm and getpass.getpass("Again: ") != value:
            raise InvalidInput("the passphrases differ")
    if confirm and len(value) < MIN_PASSPHRASE:
        raise InvalidInput(f"the passphrase needs at least {MIN_PASSPHRASE} characters")
    return value.encode()


async def recording_keypair(settings: Settings, args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        secret = passphrase(settings, args, confirm=True)
    except DomainError as exc:
        return _fail(exc.message)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(secret))
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _fail(f"{out} exists; choose another file")
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    raw = public_raw(key.public_key())
    print(f"private key written to {out} (keep it offline, with its passphrase)")
    print(f"public key: {b64e(raw)}")
    print(f"fingerprint: {fingerprint(raw)}")
    print("register it on the server: teleconsult keys recording-public-key set <public key>")
    return 0


async def recording_public_key(settings: Settings, args: argparse.Namespace) -> int:
    from .audit import AuditLog
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        registry = RecordingKeyRegistry(store, SystemClock())
        if args.action == "show":
            key = await registry.get()
            if key is None:
                print("no recording public key registered")
                return 1
            print(f"public key: {b64e(key.raw)}\nfingerprint: {key.fingerprint}")
            return 0
        text = args.public_key
        if args.file:
            try:
                text = _read_text(Path(args.file))
            except OSError as exc:
                return _fail(f"cannot read {args.file}: {exc.strerror}")
        if not text:
            return _fail("give the public key (B64) or --file F")
        try:
            key = await registry.set(parse_public_key(text.split()[-1]))
        except DomainError as exc:
            return _fail(exc.message)
        await AuditLog(store, SystemClock()).record(
            "keys.recording_public_key_set", actor="cli", target={"fingerprint": key.fingerprint})
        print(f"recording public key set; fingerprint {key.fingerprint}")
        return 0
    finally:
        await store.close()


def _read_text(path: Path) -> str:
    return path.read_text().strip()


def _open(bundle: Path, keyfile: Path, out: Path, secret: bytes) -> int:
    reports, failed = open_bundle(bundle, load_private_key(keyfile, secret), out)
    for report in reports:
        print(report.line())
    missing = sum(r.missing_key + r.failed_auth for r in reports)
    print(f"opened {len(reports)} file(s) into {out}"
          + (f"; {missing} frame(s) left out (key missing or not authentic)" if missing else "")
          + (f"; {failed} escrow record(s) did not open" if failed else ""))
    return 0


def _combine_if_asked(args: argparse.Namespace, out: Path, code: int) -> int:
    """--combined: every participant in one combined.webm (re-encoded here, offline)."""
    if code == 0 and getattr(args, "combined", False):
        from .recording.combine import combine_directory

        combined = combine_directory(out)
        print(f"combined {combined.participants} participant file(s) into {combined.path}"
              f" ({combined.duration_s:.1f} s, {combined.width}x{combined.height})")
    return code


async def recordings_open(settings: Settings, args: argparse.Namespace) -> int:
    for given, what in ((Path(args.bundle), "bundle"), (Path(args.recording_key), "recording key")):
        if not given.is_file():
            return _fail(f"no such {what} file: {str(given)!r}")
    try:
        secret = passphrase(settings, args, confirm=False)
        code = _open(Path(args.bundle), Path(args.recording_key), Path(args.out), secret)
        return _combine_if_asked(args, Path(args.out), code)
    except DomainError as exc:
        return _fail(exc.message)


async def export_e2ee(settings: Settings, args: argparse.Namespace, service: Any, store: Any) -> int:
    """`recordings export` with --sealed or --recording-key (called by cli_recordings)."""
    escrow = EscrowLog(store, SystemClock())
    if args.sealed:
        count = await service.export_sealed(args.recording_id, Path(args.out), escrow)
        print(f"sealed bundle of {args.recording_id} ({count} file(s), frames still end-to-end "
              f"encrypted) written to {args.out}; open it on the clinic's computer with "
              f"`teleconsult recordings open {args.out} --recording-key KEYFILE --out DIR`")
        return 0
    secret = passphrase(settings, args, confirm=False)
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix=".sealed-") as tmp:
        bundle = Path(tmp) / "bundle.tar"
        await service.export_sealed(args.recording_id, bundle, escrow)
        return _combine_if_asked(args, out, _open(bundle, Path(args.recording_key), out, secret))


def register_key_commands(keys: CommandGroup, recordings: CommandGroup) -> None:
    """The E2EE key commands, in the `keys` and `recordings` groups."""
    pair = keys.add("recording-keypair", "make the clinic's recording key pair "
                    "(run on the clinic's offline computer, not the server)", recording_keypair)
    pair.add_argument("--out", required=True, help="private key file to create (PEM, encrypted)")
    pair.add_argument("--passphrase-file", dest="passphrase_file")
    pub = keys.add("recording-public-key", "the clinic's recording public key", recording_public_key)
    pub.add_argument("action", choices=("set", "show"))
    pub.add_argument("public_key", nargs="?", default="", help="B64 raw point (set)")
    pub.add_argument("--file", help="read the public key from a file (set)")
    opener = recordings.add("open", "decrypt a sealed E2EE recording bundle (on the clinic's computer)",
                            recordings_open)
    opener.add_argument("bundle")
    opener.add_argument("--recording-key", dest="recording_key", required=True)
    opener.add_argument("--out", required=True, help="directory to write into (created)")
    opener.add_argument("--passphrase-file", dest="passphrase_file")
    opener.add_argument("--combined", action="store_true",
                        help="also write combined.webm: every participant in one file (re-encoded, offline)")
