"""The shared test repository is valid and serves the same weights through both backends."""

from __future__ import annotations

import json
from pathlib import Path

from server.repository.config import load_model_config
from tests.support import TINY_LABELS, TINY_MAX_BATCH, TINY_MAX_LENGTH, make_tiny_hf_model


def test_configs_validate(tiny_repository: Path) -> None:
    onnx = load_model_config(tiny_repository / "tiny-sentiment" / "config.yaml")
    torch = load_model_config(tiny_repository / "tiny-sentiment-torch" / "config.yaml")
    assert (onnx.engine.backend, torch.engine.backend) == ("onnxruntime", "torch")
    for config in (onnx, torch):
        assert config.labels == TINY_LABELS
        assert config.max_length == TINY_MAX_LENGTH
        assert config.batching.max_batch_size == TINY_MAX_BATCH
        assert config.batching.max_queue_delay_us == 20000
        assert config.batching.max_queue_size == 64


def test_version_folders_hold_the_artifacts(tiny_repository: Path) -> None:
    onnx_version = tiny_repository / "tiny-sentiment" / "1"
    assert (onnx_version / "model.onnx").is_file()
    assert (onnx_version / "tokenizer.json").is_file()
    torch_version = tiny_repository / "tiny-sentiment-torch" / "1"
    assert (torch_version / "model.safetensors").is_file()
    assert (torch_version / "tokenizer.json").is_file()


def test_hf_model_labels_and_seed(tmp_path: Path) -> None:
    a = make_tiny_hf_model(tmp_path / "a", labels=("no", "yes"), seed=1)
    b = make_tiny_hf_model(tmp_path / "b", labels=("no", "yes"), seed=1)
    config = json.loads((a / "config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"}
    assert config["label2id"] == {"no": 0, "yes": 1}
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert not list(a.glob("*.bin"))
