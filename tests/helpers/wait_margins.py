"""How close bounded waits come to their bounds: with TELECONSULT_TEST_WAIT_LOG=FILE set, every
wait that took over a third of its bound appends a line (test, what, seconds, bound) to FILE.
A diagnostic for finding tests that pass only by a small margin; silent otherwise."""

from __future__ import annotations

import os


def note(what: str, elapsed_s: float, timeout_s: float) -> None:
    path = os.environ.get("TELECONSULT_TEST_WAIT_LOG")
    if not path or elapsed_s < timeout_s / 3:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{elapsed_s / timeout_s:5.2f}\t{elapsed_s:7.2f}\t{timeout_s:6.1f}\t{test}\t{what}\n")
