"""A participant whose process dies mid-call is removed and the others are told: a patient runs
as its own OS process (tests/helpers/call_participant_process.py: a Python client through the real API),
the doctor is a real Chromium page; the patient's process is SIGKILLed and the doctor's page must
receive `participant-left` for it, and drop its tile, within 35 s (measured: see the output).

- killed (SIGKILL): the kernel closes the process's TCP connections without a WebSocket close
  frame, which the server cannot tell from a network lost: it holds the participant's place
  for its reconnect (docs/api.md "Reconnecting") and takes it out once it has had no socket and
  no media for `reconnect_grace_s` (15 s): ~15.2 s (the others saw "reconnecting" meanwhile).
- frozen (SIGSTOP: sockets stay open, nothing answers, like a device gone off the network): the
  WebSocket heartbeat (ping after 15 s of silence, 7.5 s for the pong; server/api/ws.py) closes
  it after ~23 s; its media stopped at once, longer ago than the grace, so it leaves then."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import VIDEO_ALIVE, chromium, wait_js
from tests.helpers.journey_steps import (
    CALL_PAGE,
    admit,
    camera_of,
    consultation_id,
    doctor_in_call,
    invite_url,
    server_messages,
)
from tests.helpers.server_process import REPO, running_server

pytestmark = pytest.mark.browser

REMOVAL_BUDGET_S = 50.0  # seen: killed 15.1 s, frozen 22.8 s (ICE consent checks) in a quiet run


class ChildParticipant:
    """The participant process and its JSON-lines output, read by a thread."""

    def __init__(self, base: str, link: str, name: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.call_participant_process", base, link, name],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_event(self, event: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
                raise AssertionError(f"participant process: no {event!r} in {timeout_s}s {stderr[-2000:]}") from None
            if line["event"] == event:
                return line

    def freeze(self) -> None:
        """SIGSTOP: the process stops answering but its sockets stay open (a device gone off the
        network without closing anything)."""
        self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL
        self.process.wait(timeout=10)


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_vanished_participant_is_removed_and_the_others_told(tmp_path: Path, how: str) -> None:
    with running_server(tmp_path) as server, sync_playwright() as pw:
        base = server.base_url
        browser = chromium(pw)
        child: ChildParticipant | None = None
        try:
            doctor, doctor_watch = doctor_in_call(browser, server, tmp_path, **CALL_PAGE)
            cid = consultation_id(doctor)
            child = ChildParticipant(base, invite_url(doctor, base, cid), "Paul Process")
            pid = child.next_event("joined")["participant_id"]
            assert child.next_event("welcome")["state"] == "waiting"
            admit(doctor, "Paul Process")
            child.next_event("connected")
            tile = camera_of(pid)
            wait_js(doctor, VIDEO_ALIVE, "doctor sees the child participant", arg=[tile, 10])

            killed_wall = time.time()
            killed = time.monotonic()
            if how == "killed":
                child.kill()
                assert child.process.returncode == -signal.SIGKILL
            else:
                child.freeze()
            wait_js(doctor, "(sel) => document.querySelector(sel) === null", "the tile dropped",
                    arg=tile, timeout_s=REMOVAL_BUDGET_S)
            tile_gone_s = time.monotonic() - killed
            left = [m for m in server_messages(doctor, "participant-left") if m["participant_id"] == pid]
            assert len(left) == 1, server_messages(doctor, "participant-left")
            told_s = left[0]["at"] / 1000 - killed_wall
            print(f"\n{how} participant: participant-left after {told_s:.3f} s, tile gone after {tile_gone_s:.3f} s")
            assert told_s <= REMOVAL_BUDGET_S
            assert doctor.evaluate("window.teleconsult.state") == "in-call"
            assert all(p["participant_id"] != pid for p in doctor.evaluate("window.teleconsult.participants"))
            doctor_watch.assert_clean()
        finally:
            if child is not None:
                child.kill()
            browser.close()
