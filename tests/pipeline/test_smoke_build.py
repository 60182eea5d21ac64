"""The whole pipeline, small: data -> teacher -> student -> ONNX -> int8 -> cards -> repository.

Builds ``airline-sentiment`` with the smoke profile (a few hundred examples, one epoch, a
one-layer student) into a cached repository, then checks what the server will load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from engines.scores import softmax
from pipeline.build import DEFAULT_MODELS, build, missing_models
from pipeline.evaluate import load_classifier
from pipeline.smoke import SMOKE_MODEL, held_out, smoke_repository
from server.repository.config import load_model_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repository() -> Path:
    """The cached smoke repository (.cache/smoke-repository); rebuilt when its stamp changes."""
    return smoke_repository()


def _logits(model_onnx: Path, texts: list[str], max_length: int) -> np.ndarray:
    """Logits as the card's evaluation computes them (the serving runtime, batches of 32)."""
    classifier = load_classifier(model_onnx, model_onnx.parent, max_length)
    try:
        runtime, engine = classifier.runtime, classifier.engine
        out = [runtime.logits(engine, runtime.encode(texts[i : i + 32]))
               for i in range(0, len(texts), 32)]
    finally:
        classifier.close()
    return np.concatenate(out)


def _predict(model_onnx: Path, texts: list[str], max_length: int) -> np.ndarray:
    return _logits(model_onnx, texts, max_length).argmax(axis=1)


def test_repository_is_valid_and_serves_int8(repository: Path) -> None:
    model_dir = repository / SMOKE_MODEL
    config = load_model_config(model_dir / "config.yaml")
    assert config.engine.backend == "onnxruntime"
    assert config.engine.precision == "int8"
    assert config.labels == ("negative", "neutral", "positive")
    assert config.version_policy.specific is not None
    (served,) = config.version_policy.specific.versions
    assert served in (6, 7)  # int8 with fixed activation scales: batch-invariant
    for version in range(1, 8):
        for fname in ("model.onnx", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            assert (model_dir / str(version) / fname).is_file(), (version, fname)
    assert missing_models(repository, [SMOKE_MODEL]) == []
    assert set(missing_models(repository)) == set(DEFAULT_MODELS) - {SMOKE_MODEL}


def test_model_card_has_every_variant(repository: Path) -> None:
    model_dir = repository / SMOKE_MODEL
    card = json.loads((model_dir / "model_card.json").read_text())
    assert [v["version"] for v in card["variants"]] == [1, 2, 3, 4, 5, 6, 7]
    for v in card["variants"]:
        assert set(v["metrics"]) >= {"accuracy", "macro_f1", "agreement_with_teacher", "size_mb",
                                     "batch_drift_max", "batch_drift_p99"}  # fmt: skip
    drift = {v["version"]: v["metrics"]["batch_drift_max"] for v in card["variants"]}
    assert drift[card["default_version"]] <= 0.01 and drift[6] <= 1e-4 < drift[4]
    assert any("batch-mates within 0.01" in t["target"] and t["result"] == "met" for t in card["targets"])
    int8, fp32 = card["variants"][1]["metrics"], card["variants"][0]["metrics"]
    assert int8["size_mb"] < fp32["size_mb"] / 2
    # this machine's speeds: next to the weights, not in the committed card
    measured = json.loads((model_dir / "measured.json").read_text())
    assert [v["version"] for v in measured["variants"]] == [1, 2, 3, 4, 5, 6, 7]
    for v in measured["variants"]:
        assert set(v) >= {"latency_ms_batch1_p50", "throughput_batch32"}
        assert v["throughput_batch32"] > 0
    assert set(measured["timings_s"]) >= {"teacher", "student", "evaluate"}
    text = (model_dir / "MODEL_CARD.md").read_text()
    assert "batch drift max / p99" in text and "int8-fixed" in text
    assert "CrowdFlower" in text and "Licence" in text and "sluice build airline-sentiment" in text


@pytest.mark.parametrize(("fp32", "int8"), [(1, 2), (3, 4), (3, 6), (1, 7)])
def test_int8_agrees_with_fp32(repository: Path, fp32: int, int8: int) -> None:
    model_dir = repository / SMOKE_MODEL
    max_length = load_model_config(model_dir / "config.yaml").max_length
    texts = held_out().texts
    assert len(texts) >= 50
    a = _logits(model_dir / str(fp32) / "model.onnx", texts, max_length)
    b = _logits(model_dir / str(int8) / "model.onnx", texts, max_length)
    assert float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))) >= 0.95
    # A smoke model may still predict one class everywhere; its probabilities must agree too.
    assert float(np.abs(softmax(a) - softmax(b)).max(axis=1).mean()) < 0.05


def test_second_build_reuses_the_stamp(repository: Path, caplog: pytest.LogCaptureFixture) -> None:
    onnx = repository / SMOKE_MODEL / "2" / "model.onnx"
    before = onnx.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="sluice.pipeline"):
        build([SMOKE_MODEL], repository, profile="smoke", progress=False)
    assert "up to date" in caplog.text
    assert onnx.stat().st_mtime_ns == before


def test_served_version_loads_in_the_servers_onnx_engine(repository: Path) -> None:
    from engines.registry import load_engine
    from engines.text import TextRuntime
    from engines.tokenization import TextEncoder
    from server.repository.loader import engine_spec

    model_dir = repository / SMOKE_MODEL
    config = load_model_config(model_dir / "config.yaml")
    assert config.version_policy.specific is not None
    (served,) = config.version_policy.specific.versions
    spec = engine_spec(config, model_dir / str(served), threads=2)
    engine = load_engine(config.engine.backend, spec)
    try:
        engine.warmup()
        encoder = TextEncoder.from_dir(model_dir / str(served), config.max_length)
        runtime = TextRuntime.for_engine(encoder, engine, config.batching.sub_batch_tokens)
        texts = held_out().texts[:8]
        logits = runtime.logits(engine, runtime.encode(texts))
        assert logits.shape == (8, len(config.labels))
        expected = _predict(model_dir / str(served) / "model.onnx", texts, config.max_length)
        assert logits.argmax(axis=1).tolist() == expected.tolist()
    finally:
        engine.close()
