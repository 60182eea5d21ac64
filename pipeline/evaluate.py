"""Measure one ONNX variant on the held-out test split: quality, size, CPU speed.

Measured through the serving code: the server's ONNX Runtime engine (:mod:`engines.onnx_engine`)
and its text runtime (:mod:`engines.text`: the same tokenizer settings, softmax and top-1), so
a card's accuracy is the accuracy of the answers the server gives.

Timings are the engine calls only (``InferenceSession.run`` inside the engine; tokenization is
the same for every variant and is excluded), with 2 intra-op threads, batches padded to their own longest
text, in arrival order. Throughput is the faster of two passes over the test split.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import EngineSpec
from engines.registry import load_engine
from engines.scores import best, softmax
from engines.text import TextClassifier, TextRuntime
from engines.tokenization import TextEncoder
from pipeline.metrics import accuracy, agreement, macro_f1


@dataclass(frozen=True)
class Measurement:
    accuracy: float
    macro_f1: float
    agreement_with_teacher: float
    size_mb: float
    latency_ms_batch1_p50: float
    throughput_batch32: float
    """Texts per second at batch 32 over the whole test split."""
    batch_drift_max: float | None = None
    """Largest change of any class probability of a text against the same text run alone,
    over random batch mixes and sub-batch splits (pipeline/invariance.py); None: not measured."""
    batch_drift_p99: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items() if v is not None}


def load_classifier(
    model_path: Path, tokenizer_dir: Path, max_length: int, threads: int = 2
) -> TextClassifier:
    """The server's runtime over the server's ONNX Runtime engine for one variant."""
    spec = EngineSpec(artifact=model_path, threads=threads, max_length=max_length)
    encoder = TextEncoder.from_dir(tokenizer_dir, max_length)
    engine = load_engine("onnxruntime", spec)
    return TextClassifier(TextRuntime.for_engine(encoder, engine), engine)


class TextBatcher:
    """Texts -> the ONNX inputs ``input_names`` (static int8 calibration feeds these)."""

    def __init__(self, tokenizer_json: Path, max_length: int, input_names: Sequence[str]) -> None:
        encoder = TextEncoder.from_dir(Path(tokenizer_json).parent, max_length)
        self._runtime = TextRuntime(encoder, input_names)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self._runtime.feeds(self._runtime.encoder.encode(texts))


def session(model_path: Path, threads: int = 2) -> Any:
    """A plain ONNX Runtime session (the build reads a model's input names from it)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def predict(
    classifier: TextClassifier, texts: Sequence[str], batch: int = 32
) -> tuple[list[int], float]:
    """Predicted classes (the served top-1) and the seconds spent in the engine."""
    preds: list[int] = []
    spent = 0.0
    runtime, engine = classifier.runtime, classifier.engine
    for start in range(0, len(texts), batch):
        encoded = classifier.encode(texts[start : start + batch])
        t0 = time.perf_counter()
        logits = runtime.logits(engine, encoded)
        spent += time.perf_counter() - t0
        preds.extend(best(softmax(logits)).tolist())
    return preds, spent


def measure(
    model_path: Path,
    tokenizer_json: Path,
    max_length: int,
    texts: Sequence[str],
    targets: Sequence[int],
    num_labels: int,
    teacher_predictions: Sequence[int] | None,
    *,
    latency_texts: int,
    drift_texts: int = 0,
    drift_rounds: int = 4,
) -> tuple[Measurement, list[int]]:
    """Quality, batch drift (of a sample of ``drift_texts`` texts; 0: not measured) and speed
    of one variant; also returns its predictions (for agreement)."""
    from pipeline.invariance import batch_drift, sample

    classifier = load_classifier(model_path, Path(tokenizer_json).parent, max_length)
    try:
        predict(classifier, texts[:64])  # warm-up: first runs allocate
        # Best of two full passes: on a shared machine the slower pass measures the neighbours.
        preds, spent = predict(classifier, texts)
        spent = min(spent, predict(classifier, texts)[1])
        latencies = []
        for text in texts[:latency_texts]:
            encoded = classifier.encode([text])
            t0 = time.perf_counter()
            classifier.runtime.logits(classifier.engine, encoded)
            latencies.append(time.perf_counter() - t0)
        drift = (
            batch_drift(classifier, sample(texts, drift_texts), rounds=drift_rounds)
            if drift_texts
            else None
        )
    finally:
        classifier.close()
    m = Measurement(
        accuracy=accuracy(targets, preds),
        macro_f1=macro_f1(targets, preds, num_labels),
        agreement_with_teacher=agreement(teacher_predictions, preds) if teacher_predictions else 1.0,
        size_mb=model_path.stat().st_size / 1e6,
        latency_ms_batch1_p50=statistics.median(latencies) * 1e3,
        throughput_batch32=len(texts) / spent,
        batch_drift_max=None if drift is None else drift.max,
        batch_drift_p99=None if drift is None else drift.p99,
    )
    return m, preds
