"""The api/ package's shape (issue #11.3): no import circle among its modules, every AppKey in
api/keys.py, and no route handler reading a raw JSON body (only bodies.read_body does)."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parent.parent / "server" / "api"
SERVER = API.parent


def _api_imports(path: Path) -> set[str]:
    """api/ modules this module imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x
                found.update(a.name for a in node.names)
            elif node.level == 0 and (node.module or "").startswith("server.api."):
                found.add(str(node.module).split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("server.api."))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in API.glob("*.py") if p.stem != "__init__"}
    return {name: _api_imports(path) & modules.keys() for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_cycle_finder_sees_a_planted_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_among_api_modules() -> None:
    graph = _graph()
    assert len(graph) >= 10, graph  # the parser really read the package
    assert "keys" in graph["ws"] and "bodies" in graph["auth_routes"]
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph) or [])}"


def test_every_app_key_lives_in_api_keys() -> None:
    homes = set()
    for path in SERVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "AppKey"):
                homes.add(path.relative_to(SERVER).as_posix())
    assert homes == {"api/keys.py"}


def test_no_handler_reads_a_raw_body() -> None:
    """request.json()/request.read()/json.loads on a request body only in the one parser."""
    offenders = []
    for path in API.glob("*.py"):
        if path.name == "bodies.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"json", "read", "text", "post", "loads"}:
                base = node.value
                name = base.id if isinstance(base, ast.Name) else ""
                if name in {"request", "json"}:
                    offenders.append(f"{path.name}:{node.lineno} {name}.{node.attr}")
    assert offenders == []
