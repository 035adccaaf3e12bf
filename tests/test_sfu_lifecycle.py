"""Join/leave cycles leak nothing; a vanished peer is removed via ICE consent failure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.sfu_peers import LocalPeer, close_all, connect_all, new_room
from tests.helpers.waiting import wait_for_condition

pytestmark = pytest.mark.usefixtures("media_runtime")

REPO = Path(__file__).resolve().parent.parent

CYCLES = 100


def test_join_leave_cycles_leave_no_peer_connection_and_bounded_rss() -> None:
    """Run in a fresh interpreter (tests/helpers/sfu_leak_cycles.py): in the middle of the suite, other
    tests' garbage and pytest's captured log records (whose tracebacks pin aiortc tasks) made
    the count depend on what ran before."""
    done = subprocess.run([sys.executable, "-m", "tests.helpers.sfu_leak_cycles", str(CYCLES)], cwd=REPO,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{result['cycles']} cycles in {result['seconds']}s: {result['alive']} server peer "
          f"connections alive, RSS growth {result['rss_growth_mb']} MB")
    assert result["alive"] == 0, result["referrers"]
    assert result["rss_growth_mb"] < 15


def test_a_room_refuses_to_open_before_the_media_runtime_is_set_up() -> None:
    """The aiortc hook is process-wide: installed once at start-up (server.sfu.runtime), never
    per room. A fresh interpreter, where nothing installed it, cannot open a room by mistake."""
    script = ("from server.clock import SystemClock\n"
              "from server.sfu.ice import IceSettings\n"
              "from server.sfu.room import SfuRoom\n"
              "from server.sfu.runtime import media_runtime_ready, setup_media_runtime\n"
              "try:\n"
              "    SfuRoom('r', IceSettings(), clock=SystemClock())\n"
              "except RuntimeError as exc:\n"
              "    print('refused:', exc)\n"
              "setup_media_runtime(IceSettings())\n"
              "print('ready:', media_runtime_ready())\n"
              "SfuRoom('r', IceSettings(), clock=SystemClock())\n"
              "print('opened')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused: server.sfu.runtime.setup_media_runtime()"), lines
    assert lines[1:] == ["ready: True", "opened"], lines


async def test_vanished_peer_is_removed_by_ice_consent_failure_and_others_told() -> None:
    room = new_room()
    a, b = LocalPeer("a", video=False), LocalPeer("b", video=False)
    try:
        await connect_all(a, b, room=room)
        assert b.participant is not None
        reasons: list[str] = []
        b.participant.on_closed = reasons.append
        t0 = time.monotonic()
        b.media.vanish()
        await wait_for_condition(lambda: reasons in (["ice_failed"], ["connection_lost"]), timeout_s=60,
                                 what="consent failure removes the participant", interval_s=0.2)
        await wait_for_condition(lambda: a.messages_of("participant-left"), timeout_s=5,
                                 what="others told")
        print(f"vanished peer removed after {time.monotonic() - t0:.1f}s")
        assert [p.participant_id for p in room.participants()] == ["a"]
        assert a.messages_of("participant-left")[0]["participant_id"] == "b"
    finally:
        await close_all(room, a, b)
