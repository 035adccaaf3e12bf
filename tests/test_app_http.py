"""The application shell: security headers on every response, JSON errors, Origin and CSRF."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.api.app import create_app
from server.clock import ManualClock
from server.config import Settings
from server.errors import NotFound
from server.store.sqlite import SQLiteStore

REQUIRED_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internal detail /home/x/file.py line 3")


async def _missing(request: web.Request) -> web.Response:
    raise NotFound("No such consultation.")


async def _write(request: web.Request) -> web.Response:
    return web.json_response({"written": True})


@pytest.fixture
async def client(settings: Settings, sqlite_store: SQLiteStore, clock: ManualClock) -> AsyncIterator[TestClient]:
    app = create_app(settings, store=sqlite_store, clock=clock)
    app.router.add_get("/api/test/boom", _boom)
    app.router.add_get("/api/test/missing", _missing)
    app.router.add_post("/api/test/write", _write)
    async with TestClient(TestServer(app)) as c:
        yield c


def _assert_security_headers(headers: web.CIMultiDictProxy[str] | dict[str, str]) -> None:
    for name, value in REQUIRED_HEADERS.items():
        assert headers.get(name) == value, name
    assert "Server" not in headers  # no software or version banner (issue #12.7)
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "camera=(self)" in headers["Permissions-Policy"]
    assert "microphone=(self)" in headers["Permissions-Policy"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api/csrf", "/api/test/boom",
                                  "/api/test/missing", "/no/such/page", "/login", "/static/css/app.css"])
async def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = await client.get(path)
    _assert_security_headers(response.headers)
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP here


async def test_a_malformed_request_answered_by_aiohttp_itself_names_no_versions(client: TestClient) -> None:
    """A broken request line or header never reaches the application: aiohttp's protocol
    handler answers 400 itself, and its `Server` header names no software version."""
    for raw in (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"BL\x01AH / HTTP/1.1\r\n\r\n"):
        reader, writer = await asyncio.open_connection(client.host, client.port)
        try:
            writer.write(raw)
            head = (await asyncio.wait_for(reader.read(4096), timeout=5)).split(b"\r\n\r\n", 1)[0]
        finally:
            writer.close()
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].endswith("400 Bad Request"), lines
        servers = [line for line in lines if line.lower().startswith("server:")]
        assert servers == ["Server: teleconsult"], servers
        assert "aiohttp" not in head.decode("latin-1") and "Python" not in head.decode("latin-1")


async def test_hsts_under_tls(settings: Settings, sqlite_store: SQLiteStore) -> None:
    import dataclasses

    app = create_app(dataclasses.replace(settings, tls_self_signed=True), store=sqlite_store)
    async with TestClient(TestServer(app)) as c:
        response = await c.get("/healthz")
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_health_and_readiness(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


async def test_readiness_fails_when_the_store_is_gone(settings: Settings, tmp_path: object) -> None:
    store = await SQLiteStore.open(settings.data_dir / "x.sqlite3")
    app = create_app(settings, store=store)
    async with TestClient(TestServer(app)) as c:
        await store.close()
        response = await c.get("/readyz")
        assert response.status == 503


async def test_a_crash_in_a_handler_is_a_json_error_without_traceback(client: TestClient) -> None:
    response = await client.get("/api/test/boom")
    assert response.status == 500
    body = await response.json()
    assert body["error"]["code"] == "internal"
    assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    text = await response.text()
    assert "Traceback" not in text and "secret internal detail" not in text and "file.py" not in text


async def test_domain_errors_map_to_status_and_stable_code(client: TestClient) -> None:
    response = await client.get("/api/test/missing")
    assert response.status == 404
    assert (await response.json())["error"] == {
        "code": "not_found", "message": "No such consultation.", "request_id": response.headers["X-Request-Id"]
    }


async def test_writes_need_same_origin_and_csrf_token(client: TestClient) -> None:
    origin = str(client.make_url("")).rstrip("/")
    token = (await (await client.get("/api/csrf")).json())["csrf_token"]
    ok = await client.post("/api/test/write", headers={"Origin": origin, "X-CSRF-Token": token})
    assert ok.status == 200

    no_token = await client.post("/api/test/write", headers={"Origin": origin})
    assert no_token.status == 403 and (await no_token.json())["error"]["code"] == "csrf"

    wrong_token = await client.post("/api/test/write", headers={"Origin": origin, "X-CSRF-Token": "x" * 43})
    assert wrong_token.status == 403

    foreign = await client.post("/api/test/write", headers={"Origin": "https://evil.example", "X-CSRF-Token": token})
    assert foreign.status == 403 and (await foreign.json())["error"]["code"] == "bad_origin"

    no_origin = await client.post("/api/test/write", headers={"X-CSRF-Token": token})
    assert no_origin.status == 403 and (await no_origin.json())["error"]["code"] == "origin_required"


async def test_csp_reports_are_collected(client: TestClient) -> None:
    from server.api.keys import CSP_VIOLATIONS

    origin = str(client.make_url("")).rstrip("/")
    report = {"csp-report": {"violated-directive": "script-src-elem", "blocked-uri": "inline"}}
    response = await client.post("/api/csp-report", json=report, headers={"Origin": origin})
    assert response.status == 204
    assert client.app is not None
    assert client.app[CSP_VIOLATIONS] == [{"directive": "script-src-elem", "blocked": "inline"}]
