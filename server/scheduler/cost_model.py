"""A cost model of one engine instance: seconds of an engine call per (rows, padded length).

Built from a measured :class:`~engines.cost_grid.CostGrid` (timed at load) and kept up to date
with every engine call served (:meth:`CostModel.observe_call`). It is two things at once:

- a :class:`~server.scheduler.latency.LatencyModel`: ``estimate(items, padded_tokens)`` is the
  predicted compute of a batch of ``items`` texts of ``padded_tokens / items`` tokens each, cut
  the best way (see below), so admission, the watchdog limit and ``Retry-After`` use it;
  preparation (tokenizing) stays a measured line (:class:`MeasuredLatency`);
- the batch cutter of the text runtime (``engines.text.CallCutter``): :meth:`cut` decides
  which texts go together into which engine call, minimizing the predicted time of the batch
  (the texts are given, so that is the time per text).

The grid is made monotone at load (:func:`monotone`) and interpolated into a dense table
``cost[rows, width]`` for rows 1..max rows and widths 1..max length (linear in rows between
grid sizes, linear in width between grid lengths, flat below the shortest length), so the
cut is table look-ups: sort the texts by length; the best cut of a sorted batch into
contiguous groups is a dynamic programme (``best[j] = min over i of best[i] +
cost[j - i, length of text j]``), O(n^2) look-ups for n texts (~70 us for 32, in the prepare thread).

Observed calls move the nearest grid cell towards what was measured (exponentially weighted,
scaled from the call's shape to the cell's by the model's own ratio); the table is rebuilt
every :data:`REBUILD_EVERY` observations, so a machine that gets busier (or quieter) than at
load shifts the estimates and the cuts with it.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from engines.cost_grid import CostGrid
from server.scheduler.latency import BatchEstimate, MeasuredLatency

#: Observed calls between two rebuilds of the dense table.
REBUILD_EVERY = 32
#: Rows the dense table holds (larger calls: the last row's cost per row), so a model of
#: 8192 tokens stays within ~8 MB.
MAX_TABLE_ROWS = 128
IndexArray = np.ndarray[Any, np.dtype[np.intp]]


def monotone(seconds: np.ndarray) -> np.ndarray:
    """Each cell at most any cell of more rows and more tokens: a larger call is never cheaper,
    so a smaller one timed slower than a larger one was slowed by something else (a busy
    machine) and takes the larger one's figure."""
    reverse = seconds[::-1, ::-1]
    return np.minimum.accumulate(np.minimum.accumulate(reverse, axis=0), axis=1)[::-1, ::-1]


def _weights(points: np.ndarray, x: np.ndarray) -> tuple[IndexArray, IndexArray, np.ndarray]:
    """Linear interpolation at ``x`` between sorted ``points``, flat outside them (as
    ``np.interp``): ``f(x) = v[lo] * (1 - t) + v[hi] * t``."""
    n = len(points)
    above = np.searchsorted(points, x, side="right")
    lo = np.clip(above - 1, 0, n - 1)
    hi = np.clip(above, 0, n - 1)
    span = points[hi] - points[lo]
    t = np.where(hi > lo, (x - points[lo]) / np.where(span > 0, span, 1.0), 0.0)
    return lo, hi, t


def dense_table(grid: CostGrid, max_rows: int, max_width: int) -> np.ndarray:
    """``table[r, w]``: predicted seconds of one call of ``r`` rows x ``w`` tokens (index 0 unused).

    Vectorized (a rebuild runs on the engine thread every :data:`REBUILD_EVERY` calls): tens of
    microseconds, not one ``np.interp`` per column."""
    sizes = np.asarray(grid.sizes, dtype=np.float64)
    lengths = np.asarray(grid.lengths, dtype=np.float64)
    seconds = np.asarray(grid.seconds, dtype=np.float64)
    widths = np.arange(1, max_width + 1, dtype=np.float64)
    lo, hi, t = _weights(lengths, widths)
    by_width = seconds[:, lo] * (1.0 - t) + seconds[:, hi] * t  # [sizes, widths]
    rows = np.arange(1, max_rows + 1, dtype=np.float64)
    lo, hi, t = _weights(sizes, rows)
    inside = by_width[lo, :] * (1.0 - t)[:, None] + by_width[hi, :] * t[:, None]
    beyond = rows > sizes[-1]
    if beyond.any():  # beyond the grid: the largest size's cost per row
        inside[beyond] = by_width[-1][None, :] * (rows[beyond] / sizes[-1])[:, None]
    table = np.zeros((max_rows + 1, max_width + 1))
    table[1:, 1:] = inside
    return table


class CostModel:
    """The measured cost model of one model version (see the module docstring)."""

    def __init__(self, grid: CostGrid, max_rows: int, max_width: int, decay: float = 0.9) -> None:
        if not all(math.isfinite(x) for row in grid.seconds for x in row):
            raise ValueError("cost grid has unmeasured cells")
        self._sizes = grid.sizes
        self._lengths = grid.lengths
        self._log_sizes = [math.log(x) for x in grid.sizes]
        self._log_lengths = [math.log(x) for x in grid.lengths]
        self._cells = monotone(np.asarray(grid.seconds, dtype=np.float64))
        self._grid = grid
        self._max_rows = min(max(max_rows, 1), MAX_TABLE_ROWS)
        self._max_width = max(max_width, max(grid.lengths))
        self._decay = decay
        self._lock = threading.Lock()
        self._pending = 0
        self._memo: dict[tuple[int, int], float] = {}
        self._by_width: list[list[float]] = []
        self._set_table(dense_table(self._as_grid(), self._max_rows, self._max_width))
        self._prepare = MeasuredLatency()

    @property
    def grid(self) -> CostGrid:
        """The grid as measured at load (observations not included)."""
        return self._grid

    def call_s(self, rows: int, width: int) -> float:
        """Predicted seconds of one engine call of ``rows`` rows x ``width`` tokens."""
        table = self._table
        w = min(max(width, 1), self._max_width)
        if rows <= self._max_rows:
            return float(table[max(rows, 0), w])
        return float(table[self._max_rows, w]) * rows / self._max_rows

    def uniform_s(self, items: int, width: int) -> float:
        """Predicted seconds of ``items`` texts of ``width`` tokens, cut into equal calls the best way."""
        if items <= 0:
            return 0.0
        w = min(max(width, 1), self._max_width)
        memo = self._memo
        known = memo.get((items, w))
        if known is not None:
            return known
        table = self._table
        sizes = np.arange(1, min(items, self._max_rows) + 1)
        full, rest = np.divmod(items, sizes)
        best = float((full * table[sizes, w] + table[rest, w]).min())
        if len(memo) < 65536:
            memo[(items, w)] = best
        return best

    # ---- LatencyModel ------------------------------------------------------------------------
    def estimate(self, items: int, padded_tokens: int) -> BatchEstimate | None:
        width = math.ceil(padded_tokens / items) if items > 0 else 0
        prepare = self._prepare.estimate(items, padded_tokens)
        return BatchEstimate(prepare_s=prepare.prepare_s if prepare else 0.0,
                             compute_s=self.uniform_s(items, width))

    def observe(self, items: int, padded_tokens: int, prepare_s: float, compute_s: float) -> None:
        """A served batch: its preparation feeds the prepare line (compute comes per call)."""
        self._prepare.observe(items, padded_tokens, prepare_s, compute_s)

    # ---- CallCutter --------------------------------------------------------------------------
    def cut(self, lengths: np.ndarray) -> list[tuple[IndexArray, int]]:
        """Engine calls ``(row indices, padded width)`` of least predicted total time."""
        n = int(lengths.shape[0])
        if n == 0:
            return [(np.arange(0), 0)]
        order = np.argsort(lengths, kind="stable")
        widths = np.minimum(np.maximum(lengths[order], 1), self._max_width).tolist()
        by_width = self._by_width  # by_width[w][r]: plain lists, faster than numpy at this size
        top = self._max_rows
        best = [0.0] * (n + 1)
        start = [0] * (n + 1)
        for j in range(1, n + 1):
            costs = by_width[widths[j - 1]]
            first = max(0, j - top)
            k_best, c_best = first, best[first] + costs[j - first]
            for i in range(first + 1, j):
                c = best[i] + costs[j - i]
                if c < c_best:
                    k_best, c_best = i, c
            best[j], start[j] = c_best, k_best
        calls: list[tuple[IndexArray, int]] = []
        j = n
        while j > 0:
            i = int(start[j])
            calls.append((order[i:j], widths[j - 1]))
            j = i
        calls.reverse()
        return calls

    def observe_call(self, rows: int, width: int, seconds: float) -> None:
        """One served engine call: move the nearest grid cell towards it."""
        if rows <= 0 or width <= 0 or not seconds > 0:
            return
        log_rows, log_width = math.log(rows), math.log(width)
        i = min(range(len(self._log_sizes)), key=lambda k: abs(self._log_sizes[k] - log_rows))
        j = min(range(len(self._log_lengths)), key=lambda k: abs(self._log_lengths[k] - log_width))
        predicted = self.call_s(rows, width)
        at_cell = self.call_s(self._sizes[i], self._lengths[j])
        if predicted <= 0:
            return
        seen = seconds * at_cell / predicted
        with self._lock:
            cell = self._cells[i, j]
            self._cells[i, j] = self._decay * cell + (1.0 - self._decay) * seen
            self._pending += 1
            if self._pending < REBUILD_EVERY:
                return
            self._pending = 0
            grid = self._as_grid()
        self._set_table(dense_table(grid, self._max_rows, self._max_width))

    def _set_table(self, table: np.ndarray) -> None:
        self._by_width = table.T.tolist()
        self._table = table
        self._memo = {}

    def _as_grid(self) -> CostGrid:
        return CostGrid(self._sizes, self._lengths,
                        tuple(tuple(float(x) for x in row) for row in self._cells))

    def throughput(self, width: int) -> float:
        """Texts per second of one instance at saturation, for texts of ``width`` tokens."""
        w = min(max(width, 1), self._max_width)
        rows = np.arange(1, self._max_rows + 1)
        per_s = rows / np.maximum(self._table[1:, w], 1e-12)
        return float(per_s.max())
