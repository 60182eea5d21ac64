"""Measure one ONNX variant on the held-out test split: quality, size, CPU speed.

Timings are ONNX Runtime ``run`` calls only (tokenization is the same for every variant and is
excluded), with 2 intra-op threads, batches padded to their own longest text, in arrival order.
Throughput is the faster of two passes over the test split.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

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

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


class TextBatcher:
    """Tokenizes texts with the version folder's ``tokenizer.json`` into ONNX Runtime inputs."""

    def __init__(self, tokenizer_json: Path, max_length: int, input_names: Sequence[str]) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self._tok.enable_truncation(max_length)
        self._tok.no_padding()
        self._names = tuple(input_names)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        encs = self._tok.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), longest), dtype=np.int64)
        mask = np.zeros((len(encs), longest), dtype=np.int64)
        for row, enc in enumerate(encs):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {n: arrays[n] for n in self._names}


def session(model_path: Path, threads: int = 2) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def predict(
    sess: Any, batcher: TextBatcher, texts: Sequence[str], batch: int = 32
) -> tuple[list[int], float]:
    """Predicted classes and the seconds spent in ``run``."""
    preds: list[int] = []
    spent = 0.0
    for start in range(0, len(texts), batch):
        feed = batcher(texts[start : start + batch])
        t0 = time.perf_counter()
        (logits,) = sess.run(["logits"], feed)
        spent += time.perf_counter() - t0
        preds.extend(np.asarray(logits).argmax(axis=1).tolist())
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
) -> tuple[Measurement, list[int]]:
    """Quality and speed of one variant; also returns its predictions (for agreement)."""
    sess = session(model_path)
    batcher = TextBatcher(tokenizer_json, max_length, [i.name for i in sess.get_inputs()])
    predict(sess, batcher, texts[:64])  # warm-up: first runs allocate
    # Best of two full passes: on a shared machine the slower pass measures the neighbours.
    preds, spent = predict(sess, batcher, texts)
    spent = min(spent, predict(sess, batcher, texts)[1])
    latencies = []
    for text in texts[:latency_texts]:
        feed = batcher([text])
        t0 = time.perf_counter()
        sess.run(["logits"], feed)
        latencies.append(time.perf_counter() - t0)
    m = Measurement(
        accuracy=accuracy(targets, preds),
        macro_f1=macro_f1(targets, preds, num_labels),
        agreement_with_teacher=agreement(teacher_predictions, preds) if teacher_predictions else 1.0,
        size_mb=model_path.stat().st_size / 1e6,
        latency_ms_batch1_p50=statistics.median(latencies) * 1e3,
        throughput_batch32=len(texts) / spent,
    )
    return m, preds
