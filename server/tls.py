"""TLS for the built-in server: operator-supplied files, or a self-signed pair kept in data_dir."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .config import Settings
from .errors import ConfigError


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls-self-signed.crt", data_dir / "tls-self-signed.key"


def ensure_self_signed(data_dir: Path, host: str) -> tuple[Path, Path]:
    """Create (once) and reuse a self-signed certificate for trying the server on a LAN."""
    cert_path, key_path = self_signed_paths(data_dir)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    for addr in {"127.0.0.1", host}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(addr)))
        except ValueError:
            if addr:
                names.append(x509.DNSName(addr))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "teleconsult self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert and settings.tls_key:
        cert, key = settings.tls_cert, settings.tls_key
    elif settings.tls_self_signed:
        cert, key = ensure_self_signed(settings.data_dir, settings.host)
    else:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            "invalid setting TELECONSULT_TLS_CERT/TELECONSULT_TLS_KEY: "
            f"cannot load {cert} with {key}: {reason}"
        ) from None
    return ctx
