"""The product stays apart from its tooling: nothing in ``server/`` or ``engines/`` imports
``pipeline/`` or ``loadtests/`` (``sluice build`` / ``bench`` reach them through server/tools.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("server", "engines")
TOOLING = ("pipeline", "loadtests")


def tooling_imports(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """(line, module) for every ``import`` / ``from ... import`` of a tooling package, at any
    depth (inside functions too), in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in TOOLING]
    return found


def test_the_scan_sees_every_import_form() -> None:
    source = (
        "import os\nimport pipeline.build\nfrom loadtests.bench import main\n"
        "def f():\n    from pipeline import catalogue\n    import loadtests\n"
        "from . import pipeline\nimport pipelines\n"
    )
    assert tooling_imports(source) == [
        (2, "pipeline.build"), (3, "loadtests.bench"), (5, "pipeline"), (6, "loadtests"),
    ]  # fmt: skip


@pytest.mark.parametrize("package", PRODUCT)
def test_product_imports_no_tooling(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in tooling_imports(path.read_text(encoding="utf-8"), str(path))
    ]
    assert offenders == []
