"""pipeline.export writes an ONNX file with dynamic batch and sequence axes."""

from __future__ import annotations

from pathlib import Path

import onnx

from pipeline.export import export_onnx
from tests.support import tiny_artifacts


def _dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_inputs_and_logits_have_dynamic_axes() -> None:
    _, onnx_file = tiny_artifacts()  # made by export_onnx
    graph = onnx.load(onnx_file).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    for value in graph.input:
        assert _dims(value) == ["batch", "sequence"]
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
    [logits] = graph.output
    assert (logits.name, _dims(logits)) == ("logits", ["batch", 3])


def test_model_without_token_types_exports_two_inputs(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        type_vocab_size=1, num_labels=2,
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path / "hf")
    out = export_onnx(tmp_path / "hf", tmp_path / "out" / "model.onnx")
    graph = onnx.load(out).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
