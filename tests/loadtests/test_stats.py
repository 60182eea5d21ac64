from __future__ import annotations

import math

import numpy as np
import pytest

from loadtests.stats import LatencySummary, RunResult, percentile


@pytest.mark.parametrize("q", [0, 1, 10, 25, 50, 75, 90, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    values = sorted(np.random.default_rng(7).exponential(size=1001).tolist())
    assert percentile(values, q) == pytest.approx(np.percentile(values, q, method="linear"))


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([10.0, 20.0], 99) == pytest.approx(19.9)
    assert percentile([5.0], 99) == 5.0


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_in_milliseconds_from_unsorted_seconds() -> None:
    s = LatencySummary.of([0.003, 0.001, 0.002, 0.100])
    assert s.count == 4
    assert s.p50_ms == pytest.approx(2.5)
    assert s.max_ms == pytest.approx(100.0)
    assert s.mean_ms == pytest.approx(26.5)
    assert s.p99_ms == pytest.approx(percentile([1.0, 2.0, 3.0, 100.0], 99))


def test_run_result_json_has_no_nan() -> None:
    r = RunResult("naive", "chat", "closed", 1, 1.0, 0, 0, 0, 0.0, 0.0, LatencySummary.of([]))
    doc = r.to_json()
    assert doc["latency"]["p99_ms"] is None
    assert doc["latency"]["count"] == 0
