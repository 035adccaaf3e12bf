"""A server killed (SIGKILL: a power cut, an out-of-memory kill) while it records a call. Before,
the record said "recording" for ever: no files listed, no export (it wants a stopped recording),
never purged by the retention period. Now the next start closes it: stopped, marked
interrupted, each participant's file listed with how far it plays. `recordings export`
decrypts each file up to its last complete chunk and says it is truncated; av decodes what it
holds, as far as the listing says. The doctor's dashboard, in real Chromium, shows it as
"Interrupted (the server stopped)"."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import sync_playwright

from client.api import totp_code
from client.provision import StaffCredentials, provision_doctor
from server.recording.crypto import DEFAULT_CHUNK_SIZE
from tests.helpers.browser_helpers import (
    SHOWN,
    api_call,
    chromium,
    dictionary,
    screenshot,
    sign_in,
    wait_js,
    watched,
)
from tests.helpers.journey_steps import dashboard, new_page
from tests.helpers.ops_helpers import recorded_call
from tests.helpers.server_process import REPO, run_cli, running_server, server_env
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.browser


def listed(env: dict[str, str]) -> list[dict[str, Any]]:
    out = run_cli(["recordings", "list", "--json"], env)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


ROW = "#rec-list li[data-recording-id]"


def dashboard_shows(base_url: str, creds: StaffCredentials) -> tuple[list[dict[str, Any]], str, str]:
    """The doctor signs in in Chromium and opens the dashboard: what /api/recordings says, and
    the listed recording's id and state pill as the page shows them."""
    with sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            page, watch = new_page(browser, "doctor", locale="en-GB")
            watches.append(watch)
            page.goto(f"{base_url}/static/i18n/en.json")
            # each TOTP code is accepted once (the first log-in used this step's): the next step's
            sign_in(page, creds.email, creds.password, totp_code(creds.totp_secret, time.time() + 30))
            dashboard(page, base_url)
            wait_js(page, SHOWN, "the recording in the dashboard's list", arg=ROW)
            screenshot(page, "recordings-interrupted-1280x800-en")
            return (api_call(page, "GET", "/api/recordings")["body"], page.get_attribute(ROW, "data-recording-id"),
                    page.locator(f"{ROW} .state-pill").inner_text())


def decoded(path: Path) -> tuple[int, float]:
    """Video pictures av decodes from an exported WebM, and the last one's time (s)."""
    pictures, last = 0, 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pictures += 1
            last = float(frame.time or 0.0)
    return pictures, last


async def test_a_recording_cut_by_a_killed_server_is_closed_at_the_next_start(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    recordings = tmp_path / "recordings"
    with running_server(tmp_path) as server:
        creds = await provision_doctor(server.base_url, env, "dr.cut@example.test", cwd=REPO)
        async with recorded_call(server.base_url, creds):

            def sealed_chunks() -> bool:
                files = list(recordings.rglob("*.webm.enc"))
                return len(files) == 2 and all(f.stat().st_size > 3 * DEFAULT_CHUNK_SIZE for f in files)

            await wait_for_condition(sealed_chunks, timeout_s=45, interval_s=0.1,
                                     what="three sealed chunks in each participant's file",
                                     seen=lambda: str({f.name: f.stat().st_size
                                                       for f in recordings.rglob("*.enc")}))
            server.process.kill()  # SIGKILL: no stop, no manifest, no finalising
            server.process.wait(timeout=10)
            killed_at = time.time()
    before = listed(env)
    assert [(r["state"], r["files"], r["interrupted"]) for r in before] == [("recording", [], False)], before
    rid = str(before[0]["id"])
    written = {p.name: p.stat().st_mtime for p in recordings.rglob("*.webm.enc")}

    with running_server(tmp_path) as again:
        await wait_for_condition(lambda: listed(env)[0]["state"] == "stopped", timeout_s=30,
                                 interval_s=0.5, what="the interrupted recording closed",
                                 seen=lambda: str(listed(env)))
        after = listed(env)[0]
        assert after["interrupted"] is True and sorted(after["files"]) == sorted(written)
        assert max(written.values()) - 1 <= float(after["stopped_at"]) <= killed_at + 1
        assert "was interrupted" in again.log_text()
        listed_api, row_id, pill = await asyncio.to_thread(dashboard_shows, again.base_url, creds)
    assert len(listed_api) == 1, listed_api
    shown = listed_api[0]
    assert shown["id"] == rid and shown["state"] == "stopped" and shown["interrupted"] is True
    assert row_id == rid and pill == dictionary("en")["recordings.state.interrupted"], (row_id, pill)
    plays = {f["name"]: int(f["duration_ms"]) for f in shown["files"]}
    assert len(plays) == 2 and all(ms >= 1000 for ms in plays.values()), plays
    assert shown["duration_ms"] == max(plays.values())

    out = tmp_path / "export"
    exported = run_cli(["recordings", "export", rid, "--out", str(out)], env)
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 file(s)" in exported.stdout and "2 truncated" in exported.stdout, exported.stdout
    for name, ms in plays.items():
        pictures, last = decoded(out / name)
        print(f"\n[interrupted] {name}: listed {ms} ms, decoded {pictures} pictures to {last:.2f} s")
        assert pictures >= 20, (name, pictures)
        # what decodes is what the listing says plays (one frame and one cluster of slack)
        assert abs(last * 1000 - ms) <= 1100, (name, last, ms)
