"""The layer table in CONTRIBUTING.md holds for every module under server/.

The table is read from CONTRIBUTING.md ("## Layers"), the one place it is written. Every module
under server/ is parsed (ast: `import x`, `from x import y`, relative imports, imports inside
functions or `if TYPE_CHECKING:`); the test fails, naming file, line and both layers, on:
- an import of a module of a higher layer;
- an import the module's row forbids ("never imports": dotted prefixes such as `aiohttp`);
- an import of what is not the server (the test/benchmark client);
- a module under server/ that no row covers, or that two rows cover; a row that covers nothing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TABLE_FILE = REPO / "CONTRIBUTING.md"
NOT_THE_SERVER = "not the server"
_PATH = re.compile(r"`([A-Za-z_]\w*/[^`]*)`")
_MODULE = re.compile(r"`([A-Za-z_][\w.]*)`")


@dataclass(frozen=True)
class Row:
    layer: int | None  # None: not the server
    patterns: tuple[str, ...]  # "server/store/" (a package) or "server/cli*.py" (files)
    never: tuple[str, ...]  # dotted module prefixes


@dataclass(frozen=True)
class Import:
    line: int
    module: str  # absolute dotted name


def read_table(text: str) -> list[Row]:
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.lstrip().startswith("|"):
            continue
        layer_cell, modules, never = cells
        if layer_cell.isdigit():
            layer: int | None = int(layer_cell)
        elif layer_cell == NOT_THE_SERVER:
            layer = None
        else:
            continue  # header and separator
        rows.append(Row(layer, tuple(_PATH.findall(modules)), tuple(_MODULE.findall(never))))
    return rows


def covers(pattern: str, path: str) -> bool:
    """`server/store/`: everything below it; otherwise a file name where `*` stays in one name."""
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return re.fullmatch("[^/]*".join(map(re.escape, pattern.split("*"))), path) is not None


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(root: Path, module: str) -> str | None:
    """The repository path of a dotted module, if it is one of ours."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate.as_posix()
    return None


def imports_of(root: Path, path: str) -> list[Import]:
    tree = ast.parse((root / path).read_text(), filename=path)
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            found.append(Import(node.lineno, source))
            for alias in node.names:  # `from server.sfu import aiortc_hook` imports a module
                if module_file(root, f"{source}.{alias.name}") is not None:
                    found.append(Import(node.lineno, f"{source}.{alias.name}"))
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_problems(root: Path, files: list[str], rows: list[Row]) -> list[str]:
    problems: list[str] = []
    row_of: dict[str, Row] = {}
    for path in files:
        matching = [r for r in rows if any(covers(p, path) for p in r.patterns)]
        if not matching:
            problems.append(f"{path}: not covered by the layer table in CONTRIBUTING.md")
        elif len({r.layer for r in matching}) > 1:
            problems.append(f"{path}: covered by more than one row of the layer table")
        else:
            row_of[path] = matching[0]
    for row in rows:
        for pattern in row.patterns:
            if row.layer is not None and not any(covers(pattern, p) for p in files):
                problems.append(f"CONTRIBUTING.md: the layer {row.layer} row names {pattern}, "
                                "which matches no module")
    outside = [module_name(p.rstrip("/")) for r in rows if r.layer is None for p in r.patterns]
    for path, row in sorted(row_of.items()):
        if row.layer is None:
            continue
        for imp in imports_of(root, path):
            where = f"{path}:{imp.line}"
            if any(_within(imp.module, o) for o in outside):
                problems.append(f"{where}: layer {row.layer} imports {imp.module}, "
                                "which is not part of the server")
                continue
            banned = next((n for n in row.never if _within(imp.module, n)), None)
            if banned is not None:
                problems.append(f"{where}: layer {row.layer} imports {imp.module}; layer "
                                f"{row.layer} never imports {banned}")
            target = module_file(root, imp.module)
            target_row = row_of.get(target) if target is not None else None
            if target_row is not None and target_row.layer is not None \
                    and target_row.layer > row.layer:
                problems.append(f"{where}: upward import of {imp.module} (layer "
                                f"{target_row.layer}) from a layer {row.layer} module")
    return problems


def python_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "server").rglob("*.py"))


def test_the_table_is_read_from_contributing() -> None:
    rows = read_table(TABLE_FILE.read_text())
    assert sorted(r.layer for r in rows if r.layer is not None) == [1, 2, 3, 4, 5, 6]
    assert any(r.layer is None for r in rows), "the client is listed as not the server"
    assert covers("server/cli*.py", "server/cli_users.py")
    assert not covers("server/cli*.py", "server/client/peer.py")


def test_no_module_under_server_imports_upward_or_is_left_out_of_the_table() -> None:
    files = python_files(REPO)
    assert len(files) > 50
    problems = layer_problems(REPO, files, read_table(TABLE_FILE.read_text()))
    assert not problems, "layer table violations:\n" + "\n".join(problems)


def test_the_checker_reports_each_kind_of_violation(tmp_path: Path) -> None:
    """On a small tree: an upward import inside a function, a relative one, a forbidden library,
    the client, an uncovered module and a stale row are each reported with file and line."""
    sources = {
        "server/__init__.py": "",
        "server/config.py": "def f() -> None:\n    from server.api import app\n",
        "server/store/__init__.py": "",
        "server/store/base.py": "import json\nfrom ..config import f\nfrom .. import api\n",
        "server/store/web.py": "import aiohttp.web\n",
        "server/api/__init__.py": "",
        "server/api/app.py": "from ..store import base\nfrom server.client import peer\n",
        "server/client/__init__.py": "",
        "server/client/peer.py": "",
        "server/extra.py": "",
    }
    for path, text in sources.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    rows = [Row(1, ("server/__init__.py", "server/config.py", "server/gone.py"), ("aiohttp",)),
            Row(2, ("server/store/",), ("aiohttp",)), Row(6, ("server/api/",), ()),
            Row(None, ("server/client/",), ())]
    assert layer_problems(tmp_path, python_files(tmp_path), rows) == [
        "server/extra.py: not covered by the layer table in CONTRIBUTING.md",
        "CONTRIBUTING.md: the layer 1 row names server/gone.py, which matches no module",
        "server/api/app.py:2: layer 6 imports server.client, which is not part of the server",
        "server/api/app.py:2: layer 6 imports server.client.peer, which is not part of the server",
        "server/config.py:2: upward import of server.api (layer 6) from a layer 1 module",
        "server/config.py:2: upward import of server.api.app (layer 6) from a layer 1 module",
        "server/store/base.py:3: upward import of server.api (layer 6) from a layer 2 module",
        "server/store/web.py:1: layer 2 imports aiohttp.web; layer 2 never imports aiohttp",
    ]
