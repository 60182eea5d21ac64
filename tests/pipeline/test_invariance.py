"""Batch invariance on a tiny real BERT: the measure sees dynamic int8's per-batch activation
scales, and the fixed-scale rewrite removes them without moving the answers far from dynamic
int8's or fp32's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from engines.text import TextClassifier
from pipeline.evaluate import TextBatcher, load_classifier
from pipeline.fixed_scales import fix_activation_scales
from pipeline.invariance import batch_drift, sample
from pipeline.variants import optimize_bert, quantize_int8_dynamic
from tests.support.texts import SAMPLE_TEXTS
from tests.support.tiny_model import TINY_MAX_LENGTH, tiny_artifacts

#: Texts of many lengths (1 to ~60 tokens), so batches mix short texts with long ones.
TEXTS = [f"{t} {'delayed again ' * (i % 9)}".strip() for i, t in enumerate(SAMPLE_TEXTS * 12)]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 (fused), dynamic int8 and fixed-scale int8 graphs of the tiny model."""
    hf, exported = tiny_artifacts()
    out = tmp_path_factory.mktemp("invariance")
    fp32 = out / "fp32.onnx"
    optimize_bert(exported, fp32, num_heads=2, hidden_size=32)
    dynamic = quantize_int8_dynamic(fp32, out / "dynamic.onnx")
    batcher = TextBatcher(
        hf / "tokenizer.json", TINY_MAX_LENGTH, ["input_ids", "attention_mask", "token_type_ids"]
    )
    calibration = [batcher(TEXTS[i : i + 8]) for i in range(0, 32, 8)]
    fixed = out / "fixed.onnx"
    fix_activation_scales(dynamic, fixed, calibration)
    return {"fp32": fp32, "dynamic": dynamic, "fixed": fixed, "tokenizer": hf}


@pytest.fixture
def classifier(graphs: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[TextClassifier]:
    c = load_classifier(graphs[request.param], graphs["tokenizer"], TINY_MAX_LENGTH)
    yield c
    c.close()


@pytest.mark.parametrize("classifier", ["dynamic"], indirect=True)
def test_the_measure_sees_dynamic_int8_move_with_its_batch_mates(classifier: TextClassifier) -> None:
    drift = batch_drift(classifier, TEXTS, rounds=3, seed=1)
    assert drift.texts == len(TEXTS) and drift.rounds == 3
    assert drift.max > 1e-3 and drift.max >= drift.p99 >= drift.mean > 0


@pytest.mark.parametrize("classifier", ["fixed", "fp32"], indirect=True)
def test_fixed_scales_and_fp32_do_not_depend_on_batch_mates(classifier: TextClassifier) -> None:
    assert batch_drift(classifier, TEXTS, rounds=3, seed=1).max < 1e-5


def test_the_measure_is_seeded(graphs: dict[str, Path]) -> None:
    c = load_classifier(graphs["dynamic"], graphs["tokenizer"], TINY_MAX_LENGTH)
    try:
        assert batch_drift(c, TEXTS, rounds=2, seed=3) == batch_drift(c, TEXTS, rounds=2, seed=3)
    finally:
        c.close()
    assert sample(TEXTS, 10, seed=2) == sample(TEXTS, 10, seed=2) != sample(TEXTS, 10, seed=3)
    assert sample(TEXTS[:5], 10) == TEXTS[:5]


def test_the_rewrite_keeps_the_fused_int8_kernels_with_constant_scales(graphs: dict[str, Path]) -> None:
    ops = [n.op_type for n in onnx.load(str(graphs["fixed"])).graph.node]
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    assert ops.count("QuantizeLinear") == [
        n.op_type for n in onnx.load(str(graphs["dynamic"])).graph.node
    ].count("DynamicQuantizeLinear")
    assert "MatMulIntegerToFloat" in ops and "QAttention" in ops


def _alone(graphs: dict[str, Path], name: str) -> np.ndarray:
    c = load_classifier(graphs[name], graphs["tokenizer"], TINY_MAX_LENGTH)
    try:
        return np.concatenate([c.classify([t]).probabilities for t in TEXTS])
    finally:
        c.close()


def test_fixed_scales_stay_close_to_dynamic_int8_and_fp32(graphs: dict[str, Path]) -> None:
    fixed, dynamic, fp32 = (_alone(graphs, n) for n in ("fixed", "dynamic", "fp32"))
    # each text alone: dynamic int8's scales then fit that text, the best case for dynamic
    assert np.abs(fixed - dynamic).max() < 0.05
    assert np.abs(fixed - fp32).max() < 0.05
    assert np.abs(fixed - fp32).mean() < 0.01
