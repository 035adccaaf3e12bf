"""A real coturn for the TURN tests, started on the test's own address (the veth address R of a
netlab namespace), from the deployment's own deploy/turnserver.conf.

`coturn(tmp_path, ip, secret)` writes a self-signed certificate for `ip` (made here with
`cryptography`), starts `/usr/bin/turnserver -c deploy/turnserver.conf` with the listening and
relay address `ip`, free UDP/TCP and TLS ports, `--static-auth-secret` (use-auth-secret is in
the file), and `--allowed-peer-ip=ip` (the file refuses private peers; the test's server is on
a private test address), waits until both listeners are up, and stops it on exit.
`Coturn.urls(kind)`: the TURN URL a browser gets for "udp", "tcp" or "tls".
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers.server_process import REPO, stop_process

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


@dataclass
class Coturn:
    ip: str
    port: int
    tls_port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    spki_sha256: str

    def url(self, kind: str) -> str:
        if kind == "udp":
            return f"turn:{self.ip}:{self.port}?transport=udp"
        if kind == "tcp":
            return f"turn:{self.ip}:{self.port}?transport=tcp"
        if kind == "tls":
            return f"turns:{self.ip}:{self.tls_port}?transport=tcp"
        raise ValueError(kind)

    def trusted_by_chromium(self) -> list[str]:
        """Chromium trusts exactly this certificate's key for TLS (TURN over TLS included: the
        network service verifies it like any TLS peer) and no other self-signed one."""
        return [f"--ignore-certificate-errors-spki-list={self.spki_sha256}"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def self_signed_certificate(directory: Path, ip: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "turn.crt", directory / "turn.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def spki_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return base64.b64encode(digest.finalize()).decode("ascii")


def _free_port(ip: str) -> int:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind((ip, 0))
        port = int(tcp.getsockname()[1])
        udp.bind((ip, port))  # the same number must be free for UDP too
        return port


def _listening(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((ip, port)) == 0


@contextlib.contextmanager
def coturn(tmp_path: Path, ip: str, secret: str, realm: str = "visio.clinic.example") -> Iterator[Coturn]:
    cert, key = self_signed_certificate(tmp_path, ip)
    port, tls_port = _free_port(ip), _free_port(ip)
    log_path = tmp_path / "coturn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [TURNSERVER, "-c", str(REPO / "deploy" / "turnserver.conf"), f"--listening-ip={ip}", f"--relay-ip={ip}",
             f"--listening-port={port}", f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}",
             f"--realm={realm}", f"--static-auth-secret={secret}", f"--allowed-peer-ip={ip}", "--no-dtls",
             "--verbose", f"--pidfile={tmp_path / 'coturn.pid'}"],
            stdout=log, stderr=subprocess.STDOUT)
    server = Coturn(ip, port, tls_port, log_path, process, spki_sha256(cert))
    try:
        deadline = time.monotonic() + 20
        while not (_listening(ip, port) and _listening(ip, tls_port)):
            if process.poll() is not None:
                raise AssertionError(f"coturn exited with {process.returncode}:\n{server.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"coturn not listening after 20 s:\n{server.log()[-3000:]}")
            time.sleep(0.05)  # polling interval of a bounded wait on a child process
        yield server
    finally:
        stop_process(process, timeout_s=10)
