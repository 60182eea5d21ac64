"""What only the torch backend does: safetensors only, device and precision rules, and its
agreement with the ONNX export of the same weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineSpec
from engines.errors import ArtifactError, BackendUnavailable, EngineError
from engines.options import UnsupportedSetting
from engines.registry import load_engine
from engines.tokenization import TextEncoder
from engines.torch_engine import load
from tests.support import SAMPLE_TEXTS, TINY_MAX_LENGTH, tiny_artifacts


@pytest.fixture
def hf_copy(tmp_path: Path) -> Path:
    hf, _ = tiny_artifacts()
    return Path(shutil.copytree(hf, tmp_path / "hf"))


def test_torch_and_onnxruntime_agree(tiny_repository: Path) -> None:
    encoder = TextEncoder.from_dir(tiny_repository / "tiny-sentiment" / "1", TINY_MAX_LENGTH)
    feeds = encoder.encode(SAMPLE_TEXTS).as_inputs()
    assert len(set(encoder.encode(SAMPLE_TEXTS).lengths.tolist())) == len(SAMPLE_TEXTS)
    torch_engine = load(EngineSpec(artifact=tiny_repository / "tiny-sentiment-torch" / "1", threads=1))
    onnx_engine = load_engine(
        "onnxruntime", EngineSpec(artifact=tiny_repository / "tiny-sentiment" / "1" / "model.onnx")
    )
    np.testing.assert_allclose(
        torch_engine.run(feeds)["logits"], onnx_engine.run(feeds)["logits"], atol=1e-4
    )


def test_pickle_weights_are_refused(hf_copy: Path) -> None:
    (hf_copy / "model.safetensors").rename(hf_copy / "pytorch_model.bin")
    with pytest.raises(ArtifactError, match="refusing to unpickle"):
        load(EngineSpec(artifact=hf_copy))


def test_corrupt_weights_are_an_artifact_error(hf_copy: Path) -> None:
    (hf_copy / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="cannot load"):
        load(EngineSpec(artifact=hf_copy))


def test_missing_folder_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a folder"):
        load(EngineSpec(artifact=tmp_path / "nope"))


def test_folder_without_config_is_an_artifact_error(hf_copy: Path) -> None:
    (hf_copy / "config.json").unlink()
    with pytest.raises(ArtifactError, match=r"config\.json"):
        load(EngineSpec(artifact=hf_copy))


@pytest.mark.parametrize(
    ("spec_changes", "message"),
    [
        ({"precision": "fp16"}, "needs cuda"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"options": {"cuda_graphs": True}}, "need a cuda device"),
        ({"options": {"compile": "reduce-overhead"}}, "need a cuda device"),
        ({"options": {"cuda_graph": True}}, "unknown engine option"),
        ({"device": "gpu"}, "device must be"),
    ],
)
def test_bad_settings_are_rejected(
    hf_copy: Path, spec_changes: dict[str, object], message: str
) -> None:
    spec = EngineSpec(artifact=hf_copy, **spec_changes)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedSetting, match=message) as caught:
        load(spec)
    assert isinstance(caught.value, EngineError)  # what the server's loader catches


def test_cuda_without_a_gpu_is_backend_unavailable(hf_copy: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable, match="no GPU"):
        load(EngineSpec(artifact=hf_copy, device="cuda"))


def test_model_without_token_types_takes_two_inputs(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        type_vocab_size=1, num_labels=2,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path, safe_serialization=True)
    engine = load(EngineSpec(artifact=tmp_path))
    assert [t.name for t in engine.inputs] == ["input_ids", "attention_mask"]
    out = engine.run({"input_ids": np.ones((2, 5)), "attention_mask": np.ones((2, 5))})
    assert out["logits"].shape == (2, 2)
