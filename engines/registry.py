"""Backend name -> backend module, imported only when a model asks for it.

Importing a backend pulls in its library (torch, onnxruntime, tensorrt): seconds and
gigabytes that a server serving only ONNX models should never pay.
"""

from __future__ import annotations

import importlib
import importlib.util
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


def get_loader(backend: str) -> EngineLoader:
    """Import ``backend``'s module and return its ``load`` function."""
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


def load_engine(backend: str, spec: EngineSpec) -> Engine:
    """Load one model version with ``backend``.

    Raises BackendUnavailable (unknown backend, library missing, no GPU), ArtifactError
    (model file missing or wrong) or UnsupportedSetting (a setting in ``spec`` the
    backend can't honour); all three are EngineErrors.
    """
    return get_loader(backend)(spec)
