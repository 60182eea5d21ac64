"""The GPU benchmark's measurements: timed loops over batches, and agreement between configs.

Part of :mod:`loadtests.gpu_engines`; imports nothing from the server.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engines.base import Engine
from engines.scores import softmax
from loadtests.gpu_setup import Batch


@dataclass
class Timing:
    batch_size: int
    calls: int
    texts: int
    seconds: float
    median_ms: float
    p90_ms: float
    texts_per_s: float
    real_token_fraction: float
    """Real tokens / computed (padded) tokens over the batches timed."""
    mean_sequence: float
    """Mean padded sequence length of the batches timed (before any bucket padding)."""


@dataclass
class Agreement:
    reference: str
    texts: int
    max_abs_prob_diff: float
    max_abs_logit_diff: float
    argmax_agreement: float
    finite: bool


def _timed_loop(
    call: Callable[[Batch], object], batches: Sequence[Batch], duration_s: float, min_calls: int = 3
) -> tuple[list[float], int, float]:
    # Untimed: a few calls on the shapes about to be timed (allocator, kernel selection).
    warm_until = time.perf_counter() + min(0.5, duration_s / 4)
    for i in range(min(5, len(batches))):
        call(batches[i])
        if time.perf_counter() > warm_until:
            break
    times: list[float] = []
    texts = 0
    started = time.perf_counter()
    i = 0
    while True:
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        call(batch)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        texts += len(batch)
        i += 1
        if t1 - started >= duration_s and i >= min_calls:
            break
    return times, texts, time.perf_counter() - started


def measure(
    call: Callable[[Batch], object], batches: Sequence[Batch], batch_size: int, duration_s: float
) -> Timing:
    times, texts, seconds = _timed_loop(call, batches, duration_s)
    used = [batches[i % len(batches)].encoded for i in range(len(times))]
    real = sum(b.real_tokens for b in used)
    padded = sum(b.padded_tokens for b in used)
    return Timing(
        batch_size=batch_size,
        calls=len(times),
        texts=texts,
        seconds=round(seconds, 3),
        median_ms=round(statistics.median(times) * 1e3, 3),
        p90_ms=round(float(np.percentile(times, 90)) * 1e3, 3),
        texts_per_s=round(texts / seconds, 1),
        real_token_fraction=round(real / padded, 3) if padded else 0.0,
        mean_sequence=round(float(np.mean([b.input_ids.shape[1] for b in used])), 1),
    )


def compare(reference_name: str, reference: np.ndarray, logits: np.ndarray) -> Agreement:
    p, q = softmax(reference, np.float64), softmax(logits, np.float64)
    return Agreement(
        reference=reference_name,
        texts=int(reference.shape[0]),
        max_abs_prob_diff=float(np.abs(p - q).max()),
        max_abs_logit_diff=float(np.abs(reference.astype(np.float64) - logits).max()),
        argmax_agreement=float((p.argmax(axis=1) == q.argmax(axis=1)).mean()),
        finite=bool(np.isfinite(logits).all()),
    )


def check_logits(engine: Engine, checks: Sequence[Batch]) -> list[np.ndarray]:
    return [engine.run(b.encoded.as_inputs())["logits"] for b in checks]
