"""The import graph of workbench/, built with ast: no cycle, no core module that imports a
research line, lines that only depend downwards, streamlit only in UI modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """Workbench modules ``path`` imports, anywhere in the file (function-level too):
    ``from a.b import c`` counts as a.b.c when that is a module, else as a.b."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # "workbench.geo.s2.x" -> the module that exists
                name = name.rpartition(".")[0]
            if name.startswith("workbench") and name != me:
                out.add(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(path, set(found)) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_in_workbench(graph):
    assert len(graph) > 80  # the walk saw the package
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def line_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "lines" else None


def test_no_core_module_imports_a_line(graph):
    bad = {m: sorted(d for d in deps if line_of(d)) for m, deps in graph.items() if not line_of(m)}
    assert {m: d for m, d in bad.items() if d} == {}


def test_lines_import_only_the_core_and_themselves(graph):
    bad = {m: sorted(d for d in deps if line_of(d) not in (None, line_of(m)))
           for m, deps in graph.items() if line_of(m)}
    assert {m: d for m, d in bad.items() if d} == {}


FACADES = ("experiment", "cli", "ui", "bench")


def test_a_line_library_never_imports_its_facades(graph):
    """experiment / cli / ui / bench sit on top of their line; the line's library modules
    (and its config, at the bottom) import none of them."""
    bad = {}
    for module, deps in graph.items():
        line = line_of(module)
        if line and module.rsplit(".", 1)[-1] not in FACADES:
            up = sorted(d for d in deps if line_of(d) == line and d.rsplit(".", 1)[-1] in FACADES)
            if up:
                bad[module] = up
    assert bad == {}


def test_a_line_config_imports_only_the_core(graph):
    for module, deps in graph.items():
        if line_of(module) and module.endswith(".config"):
            assert not any(line_of(d) for d in deps), (module, deps)


def test_only_ui_modules_import_streamlit():
    users = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        if "streamlit" in names:
            users.append(module_name(path))
    assert users, "the UI imports streamlit somewhere"
    assert [u for u in users if not (u.startswith("workbench.ui") or u.endswith(".ui"))] == []
