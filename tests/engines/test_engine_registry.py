"""Backends load by name, lazily; a missing library says how to install it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engines.base import EngineSpec
from engines.errors import BackendUnavailable
from engines.registry import available_backends, load_engine


def test_installed_backends_are_available() -> None:
    assert {"onnxruntime", "torch"} <= set(available_backends())


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(BackendUnavailable, match="onnxruntime, tensorrt, torch"):
        load_engine("tflite", EngineSpec(artifact=Path("model.tflite")))


@pytest.mark.parametrize(
    ("backend", "library", "module", "hint"),
    [
        ("onnxruntime", "onnxruntime", "engines.onnx_engine", "pip install 'sluice[gpu]'"),
        ("torch", "torch", "engines.torch_engine", "pip install torch==2.13.0"),
        ("tensorrt", "tensorrt", "engines.tensorrt_engine", "pip install 'sluice[tensorrt]'"),
    ],
)
def test_missing_library_is_backend_unavailable_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    backend: str,
    library: str,
    module: str,
    hint: str,
) -> None:
    # A None entry in sys.modules makes ``import library`` raise ImportError, as if it were
    # not installed; dropping the backend module forces it to be imported again.
    monkeypatch.setitem(sys.modules, library, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    spec = EngineSpec(artifact=tmp_path / "model", device="cuda")
    with pytest.raises(BackendUnavailable) as caught:
        load_engine(backend, spec)
    assert hint in str(caught.value)
    assert library not in available_backends()


def test_server_import_path_pulls_no_heavy_library() -> None:
    """Importing the registry (what the server does at start) must not import a backend."""
    import subprocess

    code = (
        "import sys, engines.registry, engines.text, engines.backend; "
        "heavy = {'torch', 'onnxruntime', 'tensorrt', 'transformers'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"
