"""Helpers for the browser tests (Playwright sync API + the real server in a subprocess).

- `chromium(playwright)`: headless Chromium from /usr/bin with fake camera, microphone and
  screen, and the permission prompts accepted; `server_and_chromium(tmp_path)`: a real server
  process and that browser, for a test's `with`.
- `create_doctor(server_env)`: `teleconsult user add` through the CLI; returns the enrolment token.
- `enrol_and_login(page, token, ...)`: the browser's own fetch against the real API (same origin,
  CSRF header), TOTP codes from client.api.totp_code.
- `PageWatch`: collects console errors, page errors and CSP violations (securitypolicyviolation
  events, recorded by an init script) of one page.
- `watched(browser)`: the watches of a test's pages, asserted clean at the end of the test body,
  their console printed when it fails; the browser closed either way.
- `wait_js(page, expr, what)`: wait on a condition in the page, bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from client.api import STEP_MARGIN_S, STEP_S, totp_code
from tests.helpers.server_process import REPO, ServerProcess, run_cli, running_server
from tests.helpers.wait_margins import note

CHROMIUM = os.environ.get("TELECONSULT_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",
    "--autoplay-policy=no-user-gesture-required",
]

CSP_RECORDER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber});
});
"""


def chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def launched_chromium(args: list[str] | None = None) -> Iterator[Any]:
    """Headless Chromium (TELECONSULT_TEST_CHROMIUM) with `args`, closed when the block ends."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args or [])
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def server_and_chromium(tmp_path: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[tuple[ServerProcess, Any]]:
    """A real server process (`running_server`) and the tests' headless Chromium (`chromium`):
    the start of a browser test; the browser is closed, then the server stopped."""
    with running_server(tmp_path, extra_env) as server, launched_chromium(CHROMIUM_ARGS) as browser:
        yield server, browser


def dictionary(lang: str) -> dict[str, str]:
    return json.loads((REPO / "web" / "i18n" / f"{lang}.json").read_text())


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


class PageWatch:
    """Console errors, uncaught page errors and CSP violations of one page."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.errors: list[str] = []
        self.log: list[str] = []
        page.on("console", lambda m: self.log.append(f"{m.type}: {m.text}"))
        page.on("response", lambda r: self.log.append(f"HTTP {r.status} {r.request.method} {r.url}")
                if r.status >= 400 else None)
        page.add_init_script(CSP_RECORDER)
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def csp_violations(self) -> list[Any]:
        return list(self.page.evaluate("window.__csp || []"))

    def assert_clean(self) -> None:
        assert self.errors == [], f"{self.name}: {self.errors}"
        assert self.csp_violations() == [], f"{self.name}: CSP {self.csp_violations()}"


@contextlib.contextmanager
def watched(browser: Any) -> Iterator[list[PageWatch]]:
    """Append each page's PageWatch to the list this yields: every one is asserted clean when the
    body ends; on any failure their last console lines are printed; the browser is closed."""
    watches: list[PageWatch] = []
    try:
        yield watches
        for watch in watches:
            watch.assert_clean()
    except BaseException:
        for watch in watches:
            print(watch.name, "console:", *watch.log[-30:], sep="\n  ")
        raise
    finally:
        browser.close()


def wait_js(page: Any, expression: str, what: str, timeout_s: float = 20, arg: Any = None) -> Any:
    # A bare expression would be eval()ed in the page, which the CSP forbids: wrap it in a function.
    if not expression.lstrip().startswith(("(", "async")):
        expression = f"() => ({expression})"
    start = time.monotonic()
    if expression.lstrip().startswith("async"):
        # page.wait_for_function takes the Promise an async predicate returns for "true" and
        # returns at once: poll the awaited value instead (bounded).
        deadline = start + timeout_s
        while True:
            value = page.evaluate(expression, arg)
            if value:
                note(what, time.monotonic() - start, timeout_s)
                return value
            if time.monotonic() > deadline:
                _timed_out(page, what, timeout_s, None)
            page.wait_for_timeout(50)  # poll interval of a bounded wait
    try:
        result = page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000)
    except Exception as exc:  # the Playwright TimeoutError, with what we waited for
        _timed_out(page, what, timeout_s, exc)
    note(what, time.monotonic() - start, timeout_s)
    return result


def _timed_out(page: Any, what: str, timeout_s: float, cause: BaseException | None) -> NoReturn:
    try:
        state = page.evaluate("window.teleconsult && window.teleconsult.state")
    except Exception:  # the page may be gone
        state = "?"
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (page state {state!r})") from cause


def create_doctor(env: Mapping[str, str], email: str, name: str) -> str:
    """`teleconsult user add --role doctor`; returns the enrolment token (link fragment)."""
    done = run_cli(["user", "add", "--email", email, "--role", "doctor", "--name", name], env)
    assert done.returncode == 0, done.stderr
    match = re.search(r"/enrol#(\S+)", done.stdout)
    assert match, done.stdout
    return match.group(1)


FETCH_JSON = """async ([method, path, body]) => {
  const c = await (await fetch('/api/csrf')).json();
  const r = await fetch(path, {method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': c.csrf_token},
                                body: body === null ? undefined : JSON.stringify(body)});
  const text = await r.text();
  return {status: r.status, body: text ? JSON.parse(text) : null};
}"""


def api_call(page: Any, method: str, path: str, body: Any = None) -> dict[str, Any]:
    return dict(page.evaluate(FETCH_JSON, [method, path, body]))


# JS: does the current TOTP step have `margin` seconds or more left? (client.api.step_has_margin)
# JS: is the element `sel` on the page and shown?
SHOWN = "(sel) => { const e = document.querySelector(sel); return !!e && e.getClientRects().length > 0; }"
TOTP_STEP_MARGIN = """([step, margin]) => step - (Date.now() / 1000) % step >= margin"""


def wait_totp_margin(page: Any) -> None:
    """Until the current TOTP step has STEP_MARGIN_S left (bounded): a code of the previous
    step, sent now, still reaches the server inside its ±1 step window."""
    wait_js(page, TOTP_STEP_MARGIN, "a TOTP step with time left", timeout_s=STEP_MARGIN_S + 5,
            arg=[STEP_S, STEP_MARGIN_S])


def enrol_and_login(page: Any, base_url: str, token: str, email: str, password: str) -> None:
    """Enrol TOTP + password, then log in (password, then a TOTP code of a later step)."""
    page.goto(f"{base_url}/static/i18n/en.json")
    started = api_call(page, "POST", "/api/enrol/start", {"token": token})
    assert started["status"] == 200, started
    secret = started["body"]["totp_secret"]
    wait_totp_margin(page)
    now = time.time()
    # Each code is accepted once: enrol with the previous step's code, log in with the current one.
    finished = api_call(page, "POST", "/api/enrol/finish", {
        "enrolment_id": started["body"]["enrolment_id"], "password": password, "code": totp_code(secret, now - 30)})
    assert finished["status"] == 200, finished
    assert len(finished["body"]["recovery_codes"]) == 10
    sign_in(page, email, password, totp_code(secret, now))


def sign_in(page: Any, email: str, password: str, code: str) -> None:
    """Log in from `page` (already on the server's origin): password, then the TOTP `code`."""
    first = api_call(page, "POST", "/api/login", {"email": email, "password": password})
    assert first["status"] == 200, first
    second = api_call(page, "POST", "/api/login/mfa", {"code": code})
    assert second["status"] == 200, second


# JS: is the remote video of `selector` decoding and not black?
VIDEO_ALIVE = """([selector, minFrames]) => {
  const v = document.querySelector(selector);
  if (!v || v.videoWidth === 0 || v.readyState < 2) return false;
  const c = document.createElement('canvas');
  c.width = 64; c.height = 48;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, 64, 48);
  const d = g.getImageData(0, 0, 64, 48).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
  const mean = sum / (d.length / 4) / 3;
  return mean > 20 && v.getVideoPlaybackQuality().totalVideoFrames >= minFrames;
}"""

FRAMES_DECODED = """async () => {
  const pc = window.teleconsult && window.teleconsult.pc;
  if (!pc) return 0;
  let n = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
  return n;
}"""


def frames_decoded(page: Any) -> int:
    return int(page.evaluate(FRAMES_DECODED))


def wait_frames_grow(page: Any, what: str, grow_by: int = 10, timeout_s: float = 20) -> None:
    start = frames_decoded(page)
    wait_js(page, f"""async () => (await ({FRAMES_DECODED})()) >= {start + grow_by}""", what, timeout_s)
