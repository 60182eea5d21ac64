"""Backend name -> backend module, imported only when a model asks for it.

Importing a backend pulls in its library (torch, onnxruntime, tensorrt): seconds and
gigabytes that a server serving only ONNX models should never pay.

The one extension point: a backend written ``"package.module:factory"`` names a callable that
takes the same :class:`~engines.base.EngineSpec` as a built-in backend's ``load(spec)`` and
returns an :class:`~engines.base.Engine` (tests' fault-injecting engine, the benchmarks' null
engine). It is refused unless the caller's ``plugins`` allow its module: ``("*",)`` allows any,
otherwise each entry is a module prefix (``tests.support`` allows ``tests.support.fault_engine``).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Sequence
from typing import NamedTuple, cast

from engines.base import Engine, EngineLoader, EngineSpec
from engines.errors import BackendUnavailable


class _Backend(NamedTuple):
    module: str
    """The engines module exposing ``load(spec) -> Engine``."""
    library: str
    """The top-level library it needs."""
    install: str
    """How to get that library."""


BACKENDS: dict[str, _Backend] = {
    "onnxruntime": _Backend(
        "engines.onnx_engine",
        "onnxruntime",
        "pip install onnxruntime (CPU) or pip install 'sluice[gpu]' (CUDA; not both)",
    ),
    "torch": _Backend(
        "engines.torch_engine",
        "torch",
        "pip install torch==2.13.0 'sluice[torch]' (torch pinned: unpinned, PyPI's is the CUDA build)",
    ),
    "tensorrt": _Backend(
        "engines.tensorrt_engine", "tensorrt", "pip install 'sluice[tensorrt]' (needs a GPU)"
    ),
}


def _library_installed(library: str) -> bool:
    try:
        return importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):
        return False


def available_backends() -> list[str]:
    """Backends whose library is installed here (found, not imported: this stays cheap)."""
    return [name for name, b in BACKENDS.items() if _library_installed(b.library)]


#: ``package.module:factory``: a plugin backend.
PLUGIN_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def is_plugin(backend: str) -> bool:
    """True for a ``package.module:factory`` backend (not a built-in name)."""
    return PLUGIN_PATTERN.match(backend) is not None


def plugin_allowed(module: str, plugins: Sequence[str]) -> bool:
    """``module`` is allowed by ``plugins`` ("*", or module prefixes on dot boundaries)."""
    return any(p == "*" or module == p or module.startswith(p + ".") for p in plugins)


def _plugin_loader(backend: str, plugins: Sequence[str]) -> EngineLoader:
    module_name, _, attr = backend.partition(":")
    if not plugins:
        raise BackendUnavailable(
            f"backend '{backend}' is a plugin engine, and plugin engines are off "
            "(set engine_plugins / SLUICE_ENGINE_PLUGINS to '*' or to allowed module prefixes)"
        )
    if not plugin_allowed(module_name, plugins):
        raise BackendUnavailable(
            f"backend '{backend}': module '{module_name}' is not allowed by engine_plugins "
            f"({', '.join(plugins)})"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailable(f"backend '{backend}': cannot import {module_name}: {e}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise BackendUnavailable(f"backend '{backend}': {module_name} has no callable '{attr}'")
    return cast(EngineLoader, factory)


def get_loader(backend: str, plugins: Sequence[str] = ()) -> EngineLoader:
    """Import ``backend``'s module and return its ``load`` function (or a plugin's factory)."""
    if is_plugin(backend):
        return _plugin_loader(backend, plugins)
    entry = BACKENDS.get(backend)
    if entry is None:
        known = ", ".join(sorted(BACKENDS))
        raise BackendUnavailable(f"unknown backend '{backend}' (known: {known})")
    try:
        module = importlib.import_module(entry.module)
    except (ImportError, OSError) as e:  # OSError: a shared library the wheel needs is absent
        raise BackendUnavailable(
            f"backend '{backend}' needs {entry.library}, which cannot be imported here "
            f"({e}); install it with: {entry.install}"
        ) from e
    return cast(EngineLoader, module.load)


def load_engine(backend: str, spec: EngineSpec, plugins: Sequence[str] = ()) -> Engine:
    """Load one model version with ``backend`` (a plugin only when ``plugins`` allow it).

    Raises BackendUnavailable (unknown backend, library missing, no GPU), ArtifactError
    (model file missing or wrong) or UnsupportedSetting (a setting in ``spec`` the
    backend can't honour); all three are EngineErrors.
    """
    return get_loader(backend, plugins)(spec)
