"""Which default models count as missing: the served versions' artifacts, per backend."""

from __future__ import annotations

from pathlib import Path

from pipeline.build import missing_models
from tests.support.tiny_model import make_tiny_hf_model

CONFIG = """\
name: airline-sentiment
task: text-classification
labels: [a, b, c]
max_length: 16
engine:
  backend: {backend}
"""


def _model(root: Path, backend: str) -> Path:
    model_dir = root / "airline-sentiment"
    model_dir.mkdir(parents=True)
    (model_dir / "config.yaml").write_text(CONFIG.format(backend=backend))
    return model_dir


def test_a_torch_folder_under_a_default_name_is_not_missing(tmp_path: Path) -> None:
    model_dir = _model(tmp_path, "torch")
    assert missing_models(tmp_path, ["airline-sentiment"]) == ["airline-sentiment"]  # no version yet
    make_tiny_hf_model(model_dir / "1", labels=("a", "b", "c"))
    assert missing_models(tmp_path, ["airline-sentiment"]) == []


def test_an_onnx_config_needs_model_onnx(tmp_path: Path) -> None:
    model_dir = _model(tmp_path, "onnxruntime")
    make_tiny_hf_model(model_dir / "1", labels=("a", "b", "c"))  # tokenizer, but no model.onnx
    assert missing_models(tmp_path, ["airline-sentiment"]) == ["airline-sentiment"]
    (model_dir / "1" / "model.onnx").write_bytes(b"not checked here, only present")
    assert missing_models(tmp_path, ["airline-sentiment"]) == []
