"""Reading Sluice's metrics and judging the targets from one run's figures."""

from __future__ import annotations

import pytest

from loadtests.probes import parse_naive_stats, parse_sluice_metrics
from loadtests.stats import LatencySummary, RunResult
from loadtests.targets import check_targets

METRICS = """\
# HELP nv_inference_count Inferences performed.
# TYPE nv_inference_count counter
nv_inference_count_total{model="airline-sentiment",version="1"} 640.0
nv_inference_count_total{model="other",version="1"} 5.0
# TYPE nv_inference_exec_count counter
nv_inference_exec_count_total{model="airline-sentiment",version="1"} 20.0
# TYPE sluice_padding_ratio histogram
sluice_padding_ratio_bucket{le="1.1",model="airline-sentiment",version="1"} 15.0
sluice_padding_ratio_bucket{le="+Inf",model="airline-sentiment",version="1"} 20.0
sluice_padding_ratio_count{model="airline-sentiment",version="1"} 20.0
sluice_padding_ratio_sum{model="airline-sentiment",version="1"} 22.4
"""


def test_parse_sluice_metrics_for_one_model() -> None:
    c = parse_sluice_metrics(METRICS, "airline-sentiment")
    assert (c.texts, c.executions) == (640.0, 20.0)
    assert c.padding_sum == pytest.approx(22.4) and c.padding_count == 20.0
    assert parse_sluice_metrics(METRICS, "missing").texts == 0.0


def test_parse_naive_stats() -> None:
    c = parse_naive_stats(b'{"texts": 3, "executions": 1, "real_tokens": 10, "padded_tokens": 12}')
    assert (c.padding_sum, c.padding_count) == (12.0, 10.0)


def _closed(target: str, shape: str, c: int, tps: float, p50: float, p99: float,
            waste: float = 0.1) -> RunResult:
    lat = LatencySummary(100, p50, p50, p99, p99, p99)
    return RunResult(target, shape, "closed", c, 10.0, 100, int(tps * 10), 0, tps, tps, lat,
                     padding_waste=waste)


def _offline(shape: str, tps: float, ms: float) -> RunResult:
    lat = LatencySummary(10, ms, ms, ms, ms, ms)
    return RunResult("ceiling", shape, "offline", 32, 1.0, 10, 100, 0, tps, tps, lat)



def test_targets_pass_and_miss() -> None:
    base = [_offline("arrival-order", 380.0, 80.0), _offline("batch-1", 300.0, 5.0),
            _closed("naive", "chat", 32, 300.0, 90.0, 200.0)]
    good = [*base, _closed("sluice", "chat", 1, 150.0, 6.0, 8.0),
            _closed("sluice", "chat", 32, 400.0, 60.0, 90.0)]
    checks = {c.name: c for c in check_targets(good, ["chat"])}
    assert checks["chat: Sluice at saturation / arrival-order ceiling"].passed is True
    assert checks["chat c=32: Sluice / naive throughput"].value == pytest.approx(400 / 300)
    assert checks["chat c=32: Sluice p99 / naive p99"].passed is True
    assert checks["chat c=1: Sluice p50 - engine batch-1 time (ms)"].value == pytest.approx(1.0)
    assert checks["chat: open loop p99 / p50"].passed is None  # not measured

    bad = [*base, _closed("sluice", "chat", 1, 100.0, 7.0, 9.0),
           _closed("sluice", "chat", 32, 330.0, 80.0, 150.0, waste=0.5)]
    checks = {c.name: c for c in check_targets(bad, ["chat"])}
    assert checks["chat: Sluice at saturation / arrival-order ceiling"].passed is False
    assert checks["chat: padding waste at saturation"].passed is False
    assert checks["chat c=32: Sluice / naive throughput"].passed is False
    assert checks["chat c=32: Sluice p99 / naive p99"].passed is False
    assert checks["chat c=1: Sluice p50 - engine batch-1 time (ms)"].passed is False


def test_open_loop_target_needs_tight_tail_and_no_errors() -> None:
    def open_run(p50: float, p99: float, errors: int) -> RunResult:
        r = _closed("sluice", "chat", 0, 100.0, p50, p99)
        r.mode, r.offered_rate, r.errors = "open", 70.0, errors
        return r

    for run, expected in ((open_run(10, 39, 0), True), (open_run(10, 41, 0), False),
                          (open_run(10, 20, 1), False)):
        checks = [c for c in check_targets([run], ["chat"]) if "open loop" in c.name]
        assert checks[0].passed is expected
