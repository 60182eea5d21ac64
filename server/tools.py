"""The tooling ``sluice`` reaches without importing it: ``sluice build`` and the build of missing
default models at ``sluice serve`` start (the pipeline), ``sluice bench`` (the load tests).

Each tool is an entry point of the group ``sluice.tools`` (pyproject.toml), resolved by name when
the command runs, so ``server/`` and ``engines/`` hold no import of ``pipeline/`` or
``loadtests/`` (tests/unit/test_import_boundaries.py). An install whose metadata predates a tool
(an editable install made before the entry point was added) falls back to :data:`BUILTIN`, the
same ``module:function`` names as strings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUP = "sluice.tools"

#: The entry points of pyproject.toml's ``[project.entry-points."sluice.tools"]``, as written there.
BUILTIN: dict[str, str] = {
    "build": "pipeline.commands:build_main",
    "build-missing": "pipeline.commands:build_missing",
    "bench": "loadtests.bench:main",
}


class ToolMissing(LookupError):
    """The tool is neither registered nor importable (e.g. an install without the tooling)."""


def _target(name: str, registered: Iterable[EntryPoint] | None) -> str:
    found = {ep.name: ep.value for ep in (entry_points(group=GROUP) if registered is None else registered)}
    if name in found:
        return found[name]
    if name in BUILTIN:
        return BUILTIN[name]
    raise ToolMissing(f"no tool '{name}' (group {GROUP}); known: {', '.join(sorted({*found, *BUILTIN}))}")


def load(name: str, registered: Iterable[EntryPoint] | None = None) -> Callable[..., Any]:
    """The function the tool ``name`` names; :class:`ToolMissing` when its package is absent."""
    target = _target(name, registered)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and module_name.startswith(e.name):
            raise ToolMissing(f"tool '{name}' needs {module_name}, not installed here") from e
        raise
    function = module
    for part in attr.split("."):
        function = getattr(function, part)
    if not callable(function):
        raise ToolMissing(f"tool '{name}': {target} is not callable")
    return function
