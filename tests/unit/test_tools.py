"""server/tools.py: ``sluice build`` and ``bench`` resolve their tool by name, from entry points
first, else from the built-in table (an install whose metadata predates the entry point)."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from server import tools

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_table_is_pyprojects_entry_points() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"][tools.GROUP] == tools.BUILTIN


def test_fallback_resolves_every_builtin_tool() -> None:
    from loadtests.bench import main as bench_main
    from pipeline.commands import build_main, build_missing

    assert tools.load("build", registered=[]) is build_main
    assert tools.load("build-missing", registered=[]) is build_missing
    assert tools.load("bench", registered=[]) is bench_main


def test_a_registered_entry_point_wins_over_the_builtin() -> None:
    registered = [EntryPoint(name="build", value="pipeline.commands:defaults_to_build", group=tools.GROUP)]
    from pipeline.commands import defaults_to_build

    assert tools.load("build", registered=registered) is defaults_to_build


def test_unknown_and_absent_tools_are_tool_missing() -> None:
    with pytest.raises(tools.ToolMissing, match=r"no tool 'nope'.*known: bench, build, build-missing"):
        tools.load("nope", registered=[])
    absent = [EntryPoint(name="x", value="no_such_package.sub:main", group=tools.GROUP)]
    with pytest.raises(tools.ToolMissing, match=r"needs no_such_package\.sub"):
        tools.load("x", registered=absent)
