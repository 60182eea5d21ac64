"""What ``sluice build`` needs beyond the base install (the ``build`` extra), checked up front.

The base install (``pip install sluice``) serves ONNX models and has none of these; without the
check a build would stop with an ImportError traceback in the middle of its first stage.
"""

from __future__ import annotations

import importlib.util

from pipeline.errors import BuildError

#: Import names of the libraries training and export use (the data packages are checked by the
#: loaders in pipeline/data.py, which name the file they need).
BUILD_LIBRARIES = ("torch", "transformers", "safetensors", "onnx", "onnxscript", "tqdm")
INSTALL = ("pip install torch==2.13.0 'sluice[build]' (torch pinned in the same command: "
           "PyPI's unpinned torch is the multi-GB CUDA build)")


def missing_build_libraries() -> list[str]:
    """The build libraries that are not installed here (looked up, not imported)."""
    missing = []
    for name in BUILD_LIBRARIES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def check_build_libraries() -> None:
    """Raise BuildError naming the missing libraries and how to install them."""
    missing = missing_build_libraries()
    if missing:
        raise BuildError(
            f"building models needs {', '.join(missing)}, not installed here (the build "
            f"extra): {INSTALL}"
        )
