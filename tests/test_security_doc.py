"""docs/security.md names, for each invariant, the test that holds it: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _references() -> list[tuple[str, str]]:
    found = []
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        current = None
        for match in re.finditer(r"`(tests/[\w/]+\.py)::(test_\w+)|`::(test_\w+)", line):
            if match.group(1):
                current = match.group(1)
                found.append((current, match.group(2)))
            elif current is not None:
                found.append((current, match.group(3)))
    return found


def test_every_test_named_in_security_md_exists() -> None:
    refs = _references()
    assert len(refs) >= 60, len(refs)
    missing = [f"{path}::{name}" for path, name in refs
               if not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.MULTILINE)]
    assert missing == []
