"""The measured cost grid and the cost model: fake engines whose cost is a known function, timed
on a fake clock, so the grid, the cuts and the estimates can be checked exactly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engines.cost_grid import CostGrid, grid_lengths, grid_sizes, measure_grid
from server.scheduler import BatchPolicy
from server.scheduler.cost_model import REBUILD_EVERY, CostModel, dense_table
from server.scheduler.forecast import drain_s
from tests.support.fake_engine import FakeEngine, ParallelClock

MS = 0.001
SIZES = grid_sizes(32)
LENGTHS = grid_lengths(64)


def timed_grid(cost: Callable[[int, int], float], budget_s: float = 100.0) -> CostGrid:
    clock = ParallelClock()
    return measure_grid(FakeEngine(cost=cost, clock=clock), SIZES, LENGTHS, budget_s, timer=clock)


def overhead_and_tokens(per_call_s: float, per_token_s: float) -> Callable[[int, int], float]:
    return lambda rows, width: per_call_s + per_token_s * rows * width


def test_grid_shape_spans_sizes_and_lengths() -> None:
    assert SIZES == (1, 2, 4, 8, 16, 32)
    assert grid_sizes(24) == (1, 2, 4, 8, 16, 24)
    assert LENGTHS[0] == 8 and LENGTHS[-1] == 64 and len(LENGTHS) <= 5
    assert grid_lengths(4) == (4,)


def test_the_grid_holds_what_each_cell_cost() -> None:
    cost = overhead_and_tokens(1 * MS, 0.01 * MS)
    grid = timed_grid(cost)
    assert grid.complete
    for i, size in enumerate(SIZES):
        for j, length in enumerate(LENGTHS):
            assert grid.seconds[i][j] == pytest.approx(cost(size, length))
    assert CostGrid.from_json(grid.to_json()) == grid
    with_alone = CostGrid(grid.sizes, grid.lengths, grid.seconds, alone=tuple(LENGTHS))
    assert CostGrid.from_json(with_alone.to_json()) == with_alone
    old = {k: v for k, v in grid.to_json().items() if k != "alone"}  # a cache file of before
    assert CostGrid.from_json(old) == grid
    with pytest.raises(ValueError):
        CostGrid.from_json({**grid.to_json(), "alone": [1.0]})


def test_the_budget_stops_the_grid_and_the_rest_is_extrapolated() -> None:
    cost = overhead_and_tokens(0.0, 1 * MS)  # 32 x 64 tokens: 2 s a run
    grid = timed_grid(cost, budget_s=1.0)
    assert not grid.complete
    assert grid.measured_s <= 1.0
    big = grid.seconds[-1][-1]
    assert big == pytest.approx(cost(32, 64))  # scaled by tokens from the largest timed cell


def test_estimates_follow_the_grid_between_its_points() -> None:
    cost = overhead_and_tokens(1 * MS, 0.01 * MS)
    model = CostModel(timed_grid(cost), max_rows=32, max_width=64)
    assert model.call_s(8, 16) == pytest.approx(cost(8, 16))
    assert model.call_s(12, 40) == pytest.approx(cost(12, 40), rel=0.05)  # linear both ways
    estimate = model.estimate(1, 16)
    assert estimate is not None and estimate.compute_s == pytest.approx(cost(1, 16))
    assert estimate.prepare_s == 0.0  # learnt while serving


def test_with_a_large_call_overhead_a_batch_is_one_call() -> None:
    model = CostModel(timed_grid(overhead_and_tokens(5 * MS, 0.001 * MS)), 32, 64)
    calls = model.cut(np.array([8, 60, 12, 30, 9, 64]))
    assert len(calls) == 1 and calls[0][1] == 64


def test_with_cost_in_padded_tokens_only_lengths_are_not_mixed() -> None:
    model = CostModel(timed_grid(overhead_and_tokens(0.0, 0.01 * MS)), 32, 64)
    lengths = np.array([8, 64, 8, 64, 8, 64])
    calls = model.cut(lengths)
    assert sorted(width for _, width in calls)[0] == 8
    for rows, width in calls:
        assert set(lengths[rows]) == {width}  # no padding at all
    assert sorted(np.concatenate([rows for rows, _ in calls]).tolist()) == list(range(6))


def test_the_cut_minimizes_the_predicted_time() -> None:
    cost = overhead_and_tokens(1 * MS, 0.01 * MS)
    model = CostModel(timed_grid(cost), 32, 64)
    lengths = np.array([8] * 20 + [64] * 4)  # short texts apart from the long ones pay
    calls = model.cut(lengths)
    assert sorted((len(rows), width) for rows, width in calls) == [(4, 64), (20, 8)]
    chosen = sum(model.call_s(len(rows), width) for rows, width in calls)
    assert chosen < model.call_s(24, 64)


def test_served_calls_move_the_model() -> None:
    cost = overhead_and_tokens(1 * MS, 0.01 * MS)
    model = CostModel(timed_grid(cost), 32, 64)
    before = model.call_s(8, 16)
    for _ in range(REBUILD_EVERY * 10):
        model.observe_call(8, 16, 2 * cost(8, 16))  # the machine got twice as slow
    assert model.call_s(8, 16) == pytest.approx(2 * before, rel=0.05)
    assert model.call_s(32, 64) == pytest.approx(cost(32, 64))  # far cells keep their figures


def test_admission_drains_the_queue_at_the_cost_models_speed() -> None:
    per_call, per_token = 2 * MS, 0.01 * MS
    model = CostModel(timed_grid(overhead_and_tokens(per_call, per_token)), 32, 64)
    policy = BatchPolicy(max_batch_size=32)
    drain = drain_s(model, policy, items=64, tokens=64 * 16, backlog_s=0.0)
    assert drain == pytest.approx(2 * (per_call + per_token * 32 * 16), rel=0.05)


def test_a_cell_slowed_by_a_busy_machine_takes_its_larger_neighbours_figure() -> None:
    cost = overhead_and_tokens(1 * MS, 0.01 * MS)
    grid = timed_grid(cost)
    seconds = [list(row) for row in grid.seconds]
    seconds[1][1] = 1.0  # 2 rows x 13 tokens "took" a second
    noisy = CostGrid(grid.sizes, grid.lengths, tuple(tuple(r) for r in seconds))
    model = CostModel(noisy, 32, 64)
    assert model.call_s(2, LENGTHS[1]) == pytest.approx(cost(2, LENGTHS[2]))  # the next larger
    assert model.call_s(32, 64) == pytest.approx(cost(32, 64))


def _reference_table(grid: CostGrid, max_rows: int, max_width: int) -> np.ndarray:
    """The dense table by one np.interp per column (what dense_table vectorizes)."""
    sizes, lengths = np.asarray(grid.sizes, float), np.asarray(grid.lengths, float)
    seconds = np.asarray(grid.seconds, float)
    widths = np.arange(1, max_width + 1, dtype=float)
    by_width = np.stack([np.interp(widths, lengths, row) for row in seconds])
    rows = np.arange(1, max_rows + 1, dtype=float)
    table = np.zeros((max_rows + 1, max_width + 1))
    for w in range(max_width):
        column = np.interp(rows, sizes, by_width[:, w])
        beyond = rows > sizes[-1]
        column[beyond] = by_width[-1, w] * rows[beyond] / sizes[-1]
        table[1:, w + 1] = column
    return table


@pytest.mark.parametrize("seed", range(5))
def test_the_dense_table_interpolates_like_np_interp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = (1, 2, 4, 8, 16)
    lengths = (8, 13, 21, 34, 56)
    grid = CostGrid(sizes, lengths, tuple(tuple(float(x) for x in rng.uniform(1e-4, 1e-2, len(lengths)))
                                          for _ in sizes))
    for max_rows, max_width in ((16, 56), (40, 64), (3, 5)):
        assert dense_table(grid, max_rows, max_width) == pytest.approx(
            _reference_table(grid, max_rows, max_width), rel=1e-12, abs=1e-15)
