"""Every state-changing route and every JSON route, given a bad body, answers 4xx with a JSON
error from the one body parser and logs no traceback (issue #12.4). The routes come from the
app's own route table, so a route added later is covered without anyone listing it."""

from __future__ import annotations

import logging
import re

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers.rooms_helpers import Env

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BAD_BODIES: dict[str, bytes] = {
    "nested-list": b"[" * 8000,
    "nested-object": b'{"a":' * 8000,
    "nested-in-field": b'{"email":' + b"[" * 8000 + b"}",
    "invalid-json": b"{not json",
    "invalid-utf8": b'{"email": "\xff\xfe"}',
    "wrong-shape-list": b'["email", "password"]',
    "wrong-shape-string": b'"hello"',
    "wrong-shape-number": b"12",
    "oversize": b'{"label": "' + b"x" * 40_000 + b'"}',
}
PARSER_CODES = {"invalid_body", "too_large"}


def _concrete(info: dict[str, object]) -> str | None:
    """A route's path with every variable filled in (an alternation with its first option)."""
    if "path" in info:
        return str(info["path"])
    pattern = info.get("pattern")
    formatter = str(info.get("formatter", ""))
    if not isinstance(pattern, re.Pattern):
        return formatter or None
    values = {}
    for name, regex in re.findall(r"\(\?P<(\w+)>([^)]*)\)", pattern.pattern):
        values[name] = regex.split("|")[0] if re.fullmatch(r"[\w|]+", regex) else "x_unknown"
    return formatter.format(**values)


def _body_routes(client: TestClient) -> list[tuple[str, str]]:
    found = []
    for route in client.app.router.routes():
        info = dict(route.resource.get_info()) if route.resource is not None else {}
        path = _concrete(info)
        if route.method in WRITE_METHODS and path:
            found.append((route.method, path))
    return sorted(set(found))


async def test_every_write_route_refuses_bad_bodies_with_a_json_4xx(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    client, headers = await env.staff("doc@example.org", "doctor")
    routes = _body_routes(client)
    assert ("POST", "/api/login") in routes and ("POST", "/api/join") in routes
    assert ("DELETE", "/api/recordings/x_unknown") in routes
    assert len(routes) >= 18, routes
    caplog.set_level(logging.DEBUG)
    failures = []
    for method, path in routes:
        for name, body in BAD_BODIES.items():
            r = await client.request(method, path, data=body,
                                     headers={**headers, "Content-Type": "application/json"})
            try:
                payload = await r.json()
                code = payload["error"]["code"]
            except Exception:  # any non-JSON answer is the failure reported
                failures.append(f"{method} {path} {name}: {r.status} not a JSON error")
                continue
            if not 400 <= r.status < 500 or code not in PARSER_CODES:
                failures.append(f"{method} {path} {name}: {r.status} {code}")
    assert failures == [], "\n".join(failures)
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The staff session survived every refused write (logout with a bad body did nothing).
    assert (await client.get("/api/me")).status == 200
