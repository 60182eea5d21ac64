"""The measured latency model: a line per stage, seeded by warm-up, following what it observes."""

from __future__ import annotations

import pytest

from server.scheduler.latency import MeasuredLatency


def test_knows_nothing_until_measured() -> None:
    assert MeasuredLatency().estimate(8, 512) is None


def test_warmup_seeds_compute_on_the_line_through_its_points() -> None:
    line = [(1, 16, 0.001 + 16e-5), (8, 128, 0.001 + 128e-5), (1, 64, 0.001 + 64e-5),
            (8, 512, 0.001 + 512e-5)]
    model = MeasuredLatency.from_warmup(line)
    estimate = model.estimate(4, 256)
    assert estimate is not None
    assert estimate.prepare_s == 0.0  # not measured at warm-up
    assert estimate.compute_s == pytest.approx(0.001 + 256e-5)


def test_tensor_models_scale_with_items_when_there_are_no_tokens() -> None:
    model = MeasuredLatency.from_warmup([(1, 0, 0.002), (4, 0, 0.005)])
    estimate = model.estimate(8, 0)
    assert estimate is not None and estimate.compute_s == pytest.approx(0.009)


def test_one_size_seen_scales_through_the_origin() -> None:
    model = MeasuredLatency()
    model.observe(8, 400, 0.0004, 0.004)
    estimate = model.estimate(16, 800)
    assert estimate is not None
    assert estimate.prepare_s == pytest.approx(0.0008) and estimate.compute_s == pytest.approx(0.008)
    assert estimate.total_s == pytest.approx(0.0088)


def test_noise_without_a_measurable_slope_gives_the_mean() -> None:
    model = MeasuredLatency(decay=1.0)
    model.observe(1, 100, 0.0, 0.004)
    model.observe(1, 200, 0.0, 0.002)
    estimate = model.estimate(1, 150)
    assert estimate is not None and estimate.compute_s == pytest.approx(0.003)


def test_recent_batches_outweigh_the_warmup() -> None:
    model = MeasuredLatency.from_warmup([(1, 100, 0.001), (1, 200, 0.002)])
    for _ in range(300):  # the machine got 10x slower (another tenant, thermal throttling)
        model.observe(1, 100, 0.0, 0.010)
        model.observe(1, 200, 0.0, 0.020)
    estimate = model.estimate(1, 150)
    assert estimate is not None and estimate.compute_s == pytest.approx(0.015, rel=0.01)


def test_decay_must_be_a_weight() -> None:
    with pytest.raises(ValueError):
        MeasuredLatency(decay=0.0)
