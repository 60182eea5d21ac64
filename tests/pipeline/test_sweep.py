"""The training sweep runs the build's recipe end to end on a tiny slice (CPU)."""

from __future__ import annotations

import time

import pytest

from pipeline import sweep


def test_grids_hold_distinct_trials_with_the_build_baseline_first() -> None:
    for grid in (sweep.default_grid(), sweep.second_grid()):
        assert len({t.label for t in grid}) == len(grid)
    assert sweep.default_grid()[0] == sweep.Trial(pooling="cls", order="random", lr=8e-5, epochs=1)


def test_unknown_batch_order_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown batch order"):
        sweep.batch_order([3, 4], 2, "sorted", __import__("random").Random(0))


@pytest.mark.slow
def test_one_trial_trains_a_teacher_and_a_student_on_a_slice() -> None:
    sweep._load(160)
    trial = sweep.Trial(pooling="mean", order="bucketed", labels="weighted")
    result = sweep.run_trial((trial, "cpu", time.time() + 600))
    for model in ("teacher", "student"):
        scores = result[model]["test"]
        assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["macro_f1"] <= 1.0
        assert result[model]["steps"] == 4  # 128 training examples in batches of 32, one epoch
    assert result["teacher"]["padded_tokens_per_epoch"] > 0
    skipped = sweep.run_trial((trial, "cpu", time.time() - 1))
    assert "skipped" in skipped
