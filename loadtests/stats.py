"""Latency percentiles and run summaries, in plain Python so the maths is easy to test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, interpolating linearly.

    Same definition as ``numpy.percentile(method="linear")``: the rank is ``q/100 * (n - 1)``
    and values between two ranks are interpolated. Empty input gives NaN.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = q / 100.0 * (n - 1)
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_s: Sequence[float]) -> LatencySummary:
        values = sorted(latencies_s)
        if not values:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan)
        ms = 1000.0
        return cls(
            count=len(values),
            mean_ms=sum(values) / len(values) * ms,
            p50_ms=percentile(values, 50) * ms,
            p90_ms=percentile(values, 90) * ms,
            p99_ms=percentile(values, 99) * ms,
            max_ms=values[-1] * ms,
        )


@dataclass
class RunResult:
    """One measured point: a target at one load (concurrency or arrival rate) and request shape."""

    target: str
    shape: str
    mode: str  # "closed" (fixed concurrency) or "open" (fixed arrival rate) or "offline"
    concurrency: int
    duration_s: float
    requests: int
    texts: int
    errors: int
    texts_per_s: float
    requests_per_s: float
    latency: LatencySummary
    offered_rate: float | None = None
    error_kinds: dict[str, int] = field(default_factory=dict)
    mean_batch_size: float | None = None
    padding_waste: float | None = None
    generator_cpu: float | None = None
    server_cpu: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = _finite(asdict(self))
        return doc


def _finite(value: Any) -> Any:
    """NaN and infinities become None so the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
