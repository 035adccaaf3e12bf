"""Shared pieces of the integrations tests: the docs' verification snippet (executed, not
copied), a webhook receiver on 127.0.0.1 (a small aiohttp app that can be told to fail), and
the personal data a payload must never hold."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.helpers.server_process import run_cli

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "integrations.md"
OPENAPI = REPO / "docs" / "openapi.json"

VerifyWebhook = Callable[..., bool]


def docs_verify_webhook() -> VerifyWebhook:
    """`verify_webhook` from the fenced block of docs/integrations.md marked `# verify-webhook`."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    snippet = [b for b in blocks if b.startswith("# verify-webhook")]
    assert len(snippet) == 1, "docs/integrations.md must hold exactly one verify-webhook block"
    namespace: dict[str, Any] = {}
    exec(compile(snippet[0], str(DOCS), "exec"), namespace)  # noqa: S102 (our own docs, on purpose)
    return namespace["verify_webhook"]  # type: ignore[no-any-return]


@dataclass
class Received:
    at: float  # time.time() when it arrived
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers `fail_first` requests with 500, then 200; keeps every request."""

    fail_first: int = 0
    received: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            status = 500 if len(self.received) < self.fail_first else 200
            self.received.append(Received(time.time(), dict(request.headers), body, status))
            return web.Response(status=status, text="ok" if status == 200 else "try later")

        app = web.Application()
        app.router.add_post("/hook", hook)
        return app

    async def start(self) -> TestServer:
        server = TestServer(self.app(), host="127.0.0.1")
        await server.start_server()
        return server

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[TestServer]:
        """The receiver on a loopback port for the block; closed when it ends."""
        server = await self.start()
        try:
            yield server
        finally:
            await server.close()

    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.answered == 200]


def assert_no_personal_data(received: Received, forbidden: list[str]) -> None:
    """Nothing personal anywhere in the body or the headers of a delivery."""
    text = received.body.decode() + "\n" + "\n".join(f"{k}: {v}" for k, v in received.headers.items())
    for value in forbidden:
        assert value.lower() not in text.lower(), f"a webhook carried personal data ({value[:3]}…)"
    assert "@" not in received.body.decode(), "a webhook body carried an e-mail address"


# -- the CLI, as an operator runs it (against a server process's data directory) ----------------

KEY_LINE = re.compile(r"API key \(shown once[^)]*\): (tck_\S+)")
ID_LINE = re.compile(r"integration (ik_[0-9a-f]+) created")
SECRET_LINE = re.compile(r"signing secret \(shown once\): (whsec_\S+)")


@dataclass(frozen=True)
class CliIntegration:
    integration_id: str
    api_key: str


def cli_create_integration(env: Mapping[str, str], scopes: list[str]) -> CliIntegration:
    args = ["integrations", "create", "--name", "Booking Tool Name"]
    for scope in scopes:
        args += ["--scope", scope]
    done = run_cli(args, env)
    assert done.returncode == 0, done.stderr
    key, iid = KEY_LINE.search(done.stdout), ID_LINE.search(done.stdout)
    assert key is not None and iid is not None, done.stdout
    return CliIntegration(iid.group(1), key.group(1))


def cli_webhook_set(env: Mapping[str, str], integration_id: str, url: str, events: list[str]) -> str:
    args = ["integrations", "webhook-set", integration_id, "--url", url]
    for event in events:
        args += ["--event", event]
    done = run_cli(args, env)
    assert done.returncode == 0, done.stderr
    secret = SECRET_LINE.search(done.stdout)
    assert secret is not None, done.stdout
    return secret.group(1)
