"""The login page's `?next=` only ever leads to our own origin (issue #12.6): resolved with the
browser's own URL parser against the page's origin, then compared by origin. Real headless
Chromium against the real app; Playwright's sync API in this file only."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pyotp
import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page

from server.api.app import create_app
from server.clock import SystemClock
from server.config import Settings
from server.store.sqlite import SQLiteStore
from tests.helpers.auth_helpers import create_staff
from tests.helpers.browser_helpers import CHROMIUM_ARGS, launched_chromium

pytestmark = pytest.mark.browser
PASSWORD = "violet kestrel above dunes"
EMAIL = "dr.redirect@example.test"

# Each of these must end on our origin. The first is the reported one: "/\evil.example".
# (`next` as the page reads it, already percent-decoded: ?next=/%5Cevil.example gives "/\evil.example".)
FOREIGN = ["/\\evil.example", "//evil.example", "\\\\evil.example", "/\t/evil.example",
           "https://evil.example/", "javascript:alert(1)", "data:text/html,x",
           " //evil.example", "/\\\\evil.example", "\\/evil.example"]
REPORTED = "/\\evil.example"  # what /login?next=/%5Cevil.example decodes to
# Same-origin after resolution (so harmless), normalised to a path.
OWN = {"/account": "/account", "/%5Cevil.example": "/%5Cevil.example", "/": "/",
       "/account?tab=sessions#x": "/account?tab=sessions#x", "http:evil.example": "/evil.example"}


class LiveApp:
    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="redirect-test-app", daemon=True)
        self.thread.start()
        self.settings = settings
        self.tmp_path = tmp_path

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def start(self) -> str:
        self.store = await SQLiteStore.open(self.tmp_path / "db" / "teleconsult.sqlite3")
        self.runner = web.AppRunner(create_app(self.settings, store=self.store, clock=SystemClock()),
                                    access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.store.close()


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> Iterator[tuple[LiveApp, str]]:
    live = LiveApp(settings, tmp_path)
    started: Future[str] = asyncio.run_coroutine_threadsafe(live.start(), live.loop)
    base = started.result(timeout=30)
    try:
        yield live, base
    finally:
        live.run(live.stop())
        live.loop.call_soon_threadsafe(live.loop.stop)
        live.thread.join(timeout=10)
        live.loop.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launched_chromium(CHROMIUM_ARGS) as b:
        yield b


def test_next_targets_resolve_to_our_origin_only(app: tuple[LiveApp, str], browser: Browser) -> None:
    _, base = app
    page: Page = browser.new_page()
    page.goto(f"{base}/login")
    results = page.evaluate(
        """async (cases) => {
             const { safeNextPath } = await import('/static/js/auth/next-target.js');
             return cases.map((c) => safeNextPath(c, location.origin));
           }""", [*FOREIGN, *OWN, None, ""])
    for case, got in zip([*FOREIGN, *OWN, None, ""], results, strict=True):
        expected = OWN.get(case, "/") if case else "/"
        assert got == expected, (case, got)
        resolved = page.evaluate("(p) => new URL(p, location.origin).origin", got)
        assert resolved == base


def test_signing_in_with_a_foreign_next_stays_on_our_origin(app: tuple[LiveApp, str], browser: Browser,
                                                            settings: Settings) -> None:
    live, base = app
    clock = SystemClock()
    _, secret = live.run(create_staff(live.store, clock, settings, email=EMAIL, role="doctor", password=PASSWORD))
    page: Page = browser.new_page()
    visited: list[str] = []
    page.on("request", lambda r: visited.append(r.url))
    page.goto(f"{base}/login?next=" + quote(REPORTED, safe="/"))
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator("#password-submit").click()
    page.locator("#code").fill(pyotp.TOTP(secret).at(int(time.time())))
    page.locator("#mfa-submit").click()
    page.wait_for_url(f"{base}/", timeout=10_000)
    assert page.evaluate("location.origin") == base
    assert not [u for u in visited if urlsplit(u).hostname != "127.0.0.1"]
