"""Every page declares its whole ES-module graph with <link rel="modulepreload">, so the
browser fetches the modules in parallel instead of discovering them import by import (a
waterfall of round trips before a patient can even see the device check)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "web"
IMPORT = re.compile(r"""^\s*import\s[^'"]*?['"](\.{1,2}/[^'"]+)['"]""", re.MULTILINE | re.DOTALL)
ENTRY = re.compile(r'<script type="module" src="/static/([^"]+)"></script>')
PRELOAD = re.compile(r'<link rel="modulepreload" href="/static/([^"]+)">')


def module_graph(entry: Path) -> set[str]:
    seen: set[str] = set()
    todo = [entry.resolve()]
    while todo:
        path = todo.pop()
        rel = path.relative_to(WEB).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        for spec in IMPORT.findall(path.read_text()):
            todo.append((path.parent / spec).resolve())
    return seen


@pytest.mark.parametrize("page", sorted(p.name for p in WEB.glob("*.html")))
def test_page_preloads_its_whole_module_graph(page: str) -> None:
    html = (WEB / page).read_text()
    entries = ENTRY.findall(html)
    assert entries, f"{page} has no module script"
    graph: set[str] = set()
    for entry in entries:
        graph |= module_graph(WEB / entry)
    graph -= set(entries)
    assert set(PRELOAD.findall(html)) == graph
