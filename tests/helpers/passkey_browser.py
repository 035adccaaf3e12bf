"""Support for the passkey browser tests (Playwright sync API, real server in a thread).

- `live_server(settings, tmp_path)`: the app on http://localhost:<port> — WebAuthn wants a host
  name for its RP ID (an IP address is not one), and http://localhost is a secure context. The
  public URL is that origin, so the RP ID is "localhost".
- `virtual_authenticator(context, page)`: Chromium's CDP virtual authenticator (CTAP2, internal
  transport, resident keys, user verification on and passing) — notes/browser-testing.md.
- `forged_assertion(...)`: an assertion signed in Python with a credential's private key as the
  virtual authenticator exports it, for the cases a browser refuses to produce (another RP ID).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from server.api.app import create_app
from server.clock import SystemClock
from server.config import Settings
from server.store.sqlite import SQLiteStore

TIMEOUT_MS = 15_000


@dataclass
class LiveServer:
    base_url: str
    loop: asyncio.AbstractEventLoop
    app: web.Application
    store: SQLiteStore
    settings: Settings

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(settings: Settings, tmp_path: Path, **overrides: Any) -> Iterator[LiveServer]:
    port = free_port()
    settings = dataclasses.replace(settings, host="127.0.0.1", port=port, **overrides)
    assert settings.base_url == f"http://localhost:{port}"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="passkey-browser-server", daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, LiveServer]:
        store = await SQLiteStore.open(settings.sqlite_path)
        app = create_app(settings, store=store, clock=SystemClock())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, LiveServer(settings.base_url, loop, app, store, settings)

    started: Future[tuple[web.AppRunner, LiveServer]] = asyncio.run_coroutine_threadsafe(start(), loop)
    runner, server = started.result(timeout=30)
    try:
        yield server
    finally:
        async def stop() -> None:
            await runner.cleanup()
            await server.store.close()

        server.run(stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def virtual_authenticator(context: Any, page: Any) -> tuple[Any, str]:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
    }})
    return cdp, str(added["authenticatorId"])


def exported_credentials(cdp: Any, authenticator_id: str) -> list[dict[str, Any]]:
    return list(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"])


def totp_now(secret: str, *, steps_back: int = 0) -> str:
    import time

    return pyotp.TOTP(secret).at(int(time.time()) - 30 * steps_back)


def login_with_password_and_code(page: Any, base_url: str, email: str, password: str, secret: str) -> None:
    page.goto(f"{base_url}/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("#password-submit").click()
    page.locator("#code").wait_for(state="visible")
    page.locator("#code").fill(totp_now(secret))
    page.locator("#mfa-submit").click()
    page.wait_for_url(lambda url: "/login" not in url)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forged_assertion(
    credential: dict[str, Any], *, challenge_b64url: str, origin: str, rp_id: str, sign_count: int,
) -> dict[str, Any]:
    """A WebAuthn assertion (the JSON a browser's toJSON() gives) signed with the exported
    private key of `credential` (CDP WebAuthn.getCredentials: base64 PKCS#8; Ed25519 or P-256)."""
    key = serialization.load_der_private_key(base64.b64decode(credential["privateKey"]), password=None)
    client_data = json.dumps({"type": "webauthn.get", "challenge": challenge_b64url, "origin": origin,
                              "crossOrigin": False}).encode()
    flags = 0x01 | 0x04  # user present, user verified
    auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)
    signed = auth_data + hashlib.sha256(client_data).digest()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(signed)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    raw_id = base64.b64decode(credential["credentialId"])
    return {
        "id": b64url(raw_id), "rawId": b64url(raw_id), "type": "public-key",
        "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                     "signature": b64url(signature),
                     "userHandle": b64url(base64.b64decode(credential["userHandle"]))},
        "clientExtensionResults": {}, "authenticatorAttachment": "platform",
    }
