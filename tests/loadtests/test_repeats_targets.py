"""Interleaved repetitions (median, spread) and the issue's target profiles on made-up figures."""

from __future__ import annotations

import pytest

from loadtests.repeats import aggregate, round_order, spread
from loadtests.report import options_rows, table_rows
from loadtests.stats import LatencySummary, RunResult
from loadtests.targets import best_offline, check_targets, resolve_profile


def _closed(target: str, shape: str, c: int, tps: float, p99: float = 50.0,
            p50: float = 10.0) -> RunResult:
    lat = LatencySummary(100, p50, p50, p99, p99, p99)
    return RunResult(target, shape, "closed", c, 10.0, 100, int(tps * 10), 0, tps, tps, lat)


def _offline(policy: str, split: str, tps: float) -> RunResult:
    lat = LatencySummary(10, 5.0, 5.0, 5.0, 5.0, 5.0)
    return RunResult("ceiling", policy, "offline", int(split[0]), 1.0, 10, 100, 0, tps, tps, lat,
                     extra={"split": split})


def test_round_order_alternates() -> None:
    units = ["ceiling", "naive", "sluice"]
    assert [round_order(units, i) for i in range(3)] == [units, units[::-1], units]


def test_aggregate_takes_medians_and_keeps_the_spread() -> None:
    runs = [_closed("sluice", "chat", 8, tps, p99) for tps, p99 in ((100, 40), (140, 80), (120, 60))]
    runs.append(_closed("naive", "chat", 8, 90.0))
    runs[1].error_kinds, runs[1].errors = {"http 429": 2}, 2
    offline = [_offline("batch-1", "1x2", 300.0), _offline("batch-1", "2x1", 400.0)]
    points = aggregate([*runs, *offline, _offline("batch-1", "2x1", 500.0)])
    assert [(p.target, p.extra.get("split", "")) for p in points] == [
        ("sluice", ""), ("naive", ""), ("ceiling", "1x2"), ("ceiling", "2x1")]
    sluice = points[0]
    assert sluice.texts_per_s == 120.0 and sluice.latency.p99_ms == 60.0
    assert sluice.extra["repeats"] == 3 and sluice.extra["spread"] == pytest.approx(40 / 120)
    assert sluice.errors == 2 and sluice.error_kinds == {"http 429": 2}
    assert points[3].texts_per_s == 450.0  # two splits stay apart; repeats of one are combined
    assert spread([5.0]) == 0.0
    table = "\n".join(table_rows(points, cores=2))
    assert "| 33% (100-140) |" in table and "| spread |" in table


def test_profiles() -> None:
    assert resolve_profile("auto", "airline-sentiment") == "student"
    assert resolve_profile("auto", "airline-sentiment", version="2") == "other"
    assert resolve_profile("auto", "airline-sentiment", protocol="infer") == "other"
    assert resolve_profile("auto", "home-intent") == "other"
    assert resolve_profile("legacy", "home-intent") == "legacy"
    with pytest.raises(ValueError):
        resolve_profile("fastest", "m")


def _student_run(sluice_tps: dict[int, float], sluice_p99: float) -> list[RunResult]:
    rows = [_offline("arrival-order", "1x2", 300.0), _offline("batch-1", "2x1", 500.0)]
    for shape in ("chat", "batch"):
        for c, naive in ((1, 200.0), (8, 300.0), (32, 320.0)):
            rows.append(_closed("naive", shape, c, naive, p99=100.0))
            rows.append(_closed("sluice", shape, c, sluice_tps[c],
                                p99=sluice_p99 if c == 32 else 10.0))
    return rows


def test_student_targets_pass_and_miss() -> None:
    good = _student_run({1: 200.0, 8: 400.0, 32: 430.0}, sluice_p99=80.0)
    assert best_offline(good) is not None and best_offline(good).texts_per_s == 500.0  # type: ignore[union-attr]
    checks = {c.name: c for c in check_targets(good, ["chat", "batch"], "student")}
    assert len(checks) == 10 and all(c.passed for c in checks.values())
    assert checks["chat: Sluice at saturation / best offline policy"].value == pytest.approx(0.86)
    assert checks["batch c=8: Sluice / naive texts/s"].value == pytest.approx(400 / 300)

    bad = _student_run({1: 190.0, 8: 380.0, 32: 410.0}, sluice_p99=81.0)
    checks = {c.name: c for c in check_targets(bad, ["chat", "batch"], "student")}
    for name in ("chat: Sluice at saturation / best offline policy", "chat c=1: Sluice / naive texts/s",
                 "chat c=8: Sluice / naive texts/s", "batch c=32: Sluice / naive texts/s",
                 "batch c=32: Sluice p99 / naive p99"):
        assert checks[name].passed is False, name


def test_other_model_targets_and_unmeasured_points() -> None:
    run = [_offline("length-sorted", "2x1", 100.0), _closed("naive", "chat", 32, 100.0),
           _closed("sluice", "chat", 32, 119.0)]
    checks = {c.name: c for c in check_targets(run, ["chat", "batch"], "other")}
    assert set(checks) == {"chat: Sluice at saturation / best offline policy",
                           "chat c=32: Sluice / naive texts/s",
                           "batch: Sluice at saturation / best offline policy",
                           "batch c=32: Sluice / naive texts/s"}
    assert checks["chat c=32: Sluice / naive texts/s"].passed is False  # 1.19 < 1.2
    assert checks["chat: Sluice at saturation / best offline policy"].passed is True
    assert checks["batch c=32: Sluice / naive texts/s"].passed is None  # not measured


def test_speedups_per_round_pair_the_same_round() -> None:
    naive = _closed("naive", "chat", 32, 100.0)
    sluice = _closed("sluice", "chat", 32, 150.0)
    naive.extra["texts_per_s_runs"], sluice.extra["texts_per_s_runs"] = [80.0, 120.0], [120.0, 180.0]
    checks = {c.name: c for c in check_targets([naive, sluice], ["chat"], "other")}
    speedup = checks["chat c=32: Sluice / naive texts/s"]
    assert speedup.rounds == (1.5, 1.5) and speedup.to_json()["rounds"] == [1.5, 1.5]
    assert checks["chat: Sluice at saturation / best offline policy"].rounds == ()


def test_options_table_gives_each_variant_against_default() -> None:
    rows = options_rows([_closed("sluice", "chat", 8, 200.0, p50=10.0),
                         _closed("sluice[auth]", "chat", 8, 180.0, p50=11.0)])
    assert rows[2] == "| sluice[auth] | chat | c=8 | 180.0 | 0.900 | - | 1.100 |"
    assert options_rows([_closed("sluice", "chat", 8, 200.0)]) == []
