"""The house's shape: no import cycle among the product's modules, and no module over 400 lines.

Imports count at any depth (a function-level import that hides a cycle is still one), except
under ``if TYPE_CHECKING:``, which never runs.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("server", "engines")
MAX_LINES = 400


def modules(root: Path = ROOT, packages: tuple[str, ...] = PRODUCT) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _type_checking_only(tree)
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets.add(module)
            targets.update(f"{module}.{a.name}" for a in node.names)
    return {t for t in targets if t in known and t != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_loop_and_only_the_loop() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_resolve_relative_nested_and_skip_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "server" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "server" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .b import x\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from server.sub import c\n"
        "def f():\n    from . import b\n"
    )
    (pkg / "b.py").write_text("x = 1\n")
    (pkg / "c.py").write_text("")
    known = modules(tmp_path, ("server",))
    assert imported("server.sub.a", pkg / "a.py", known) == {"server.sub", "server.sub.b"}
    assert imported("server.sub", pkg / "__init__.py", known) == {"server.sub.b"}


def test_the_product_has_no_import_cycle() -> None:
    known = modules()
    assert len(known) > 50
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert cycles(graph) == []


def test_no_module_is_over_400_lines() -> None:
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked
    long = {f: n for f in tracked
            if (n := len((ROOT / f).read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
