"""Timing an engine over a grid of batch sizes x padded lengths, within a time budget.

The server's cost model (``server.scheduler.cost_model``) interpolates this grid to predict
what any engine call costs, and from that chooses how to cut each batch and how to split the
cores between instances and threads. The grid is small on purpose: batch sizes 1, 2, 4, ...
up to ``max_batch_size`` and a handful of lengths up to ``max_length``.

Cells are timed cheapest first (by padded tokens); each cell is the fastest of ``repeats``
runs (the first run of a new shape pays allocations). Before a cell runs, its expected time
(the last cell's seconds per token x its tokens x repeats) is checked against what is left of
``budget_s``; cells that do not fit are filled in from the largest measured cell, scaled by
padded tokens, and the grid says it is not ``complete``.

Several engines (the instances of one split) run each cell at the same time, on a small pool
of threads kept for the whole measurement (so no thread start is timed), and afterwards one
call of one row per length runs on the first instance alone (``alone``): what a lone request
costs on that split, which the split choice weighs against its throughput at saturation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engines.base import Engine
from engines.warmup import WARMUP_MAX_TOKENS, is_text_model, text_batch

#: Lengths timed per grid, at most (the longest is always ``max_length``).
GRID_LENGTHS = 5
#: The shortest length timed.
MIN_GRID_LENGTH = 8


@dataclass(frozen=True)
class CostGrid:
    """Measured seconds of one engine call per (batch size, padded length)."""

    sizes: tuple[int, ...]
    lengths: tuple[int, ...]
    seconds: tuple[tuple[float, ...], ...]
    """``seconds[i][j]``: one call of ``sizes[i]`` rows x ``lengths[j]`` tokens."""
    measured_s: float = 0.0
    """Wall time the measurement took."""
    complete: bool = True
    """False when the budget ran out and some cells were extrapolated."""
    alone: tuple[float, ...] = ()
    """Seconds of one call of one row per length with the other instances idle (empty: one
    instance, the first row of ``seconds`` is that already)."""

    def alone_s(self) -> tuple[float, ...]:
        """One row's seconds per length on one instance with the others idle."""
        return self.alone if len(self.alone) == len(self.lengths) else self.seconds[0]

    def to_json(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "lengths": list(self.lengths),
                "seconds": [list(row) for row in self.seconds],
                "measured_s": self.measured_s, "complete": self.complete,
                "alone": list(self.alone)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CostGrid:
        sizes = tuple(int(s) for s in doc["sizes"])
        lengths = tuple(int(n) for n in doc["lengths"])
        seconds = tuple(tuple(float(x) for x in row) for row in doc["seconds"])
        if not sizes or not lengths or len(seconds) != len(sizes) or any(
            len(row) != len(lengths) for row in seconds
        ):
            raise ValueError("cost grid: sizes, lengths and seconds do not match")
        alone = tuple(float(x) for x in doc.get("alone", ()))
        if alone and len(alone) != len(lengths):
            raise ValueError("cost grid: alone and lengths do not match")
        return cls(sizes, lengths, seconds, float(doc.get("measured_s", 0.0)),
                   bool(doc.get("complete", True)), alone)


def grid_sizes(max_batch_size: int) -> tuple[int, ...]:
    """1, 2, 4, ... below ``max_batch_size``, and ``max_batch_size`` itself."""
    sizes, size = [], 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    sizes.append(max_batch_size)
    return tuple(sizes)


def grid_lengths(max_length: int, steps: int = GRID_LENGTHS) -> tuple[int, ...]:
    """About ``steps`` lengths spread geometrically from 8 tokens to ``max_length``."""
    low = min(MIN_GRID_LENGTH, max_length)
    if steps <= 1 or low == max_length:
        return (max_length,)
    ratio = (max_length / low) ** (1.0 / (steps - 1))
    return tuple(sorted({max(1, round(low * ratio**k)) for k in range(steps - 1)} | {max_length}))


def measure_grid(
    engines: Engine | Sequence[Engine],
    sizes: Sequence[int],
    lengths: Sequence[int],
    budget_s: float,
    *,
    repeats: int = 3,
    timer: Callable[[], float] = time.perf_counter,
) -> CostGrid:
    """Time warmed-up text-model ``engines`` on every cell that fits in ``budget_s``.

    Several engines (the instances of one split) run each cell at the same time, one thread
    each, so the grid holds what a call costs while the other instances compute too; then one
    row per length runs on the first engine alone (:attr:`CostGrid.alone`).
    """
    group = [engines] if isinstance(engines, Engine) else list(engines)
    engine = group[0]
    if not is_text_model(engine.inputs):
        raise ValueError("a cost grid needs a tokenized-text model")
    if not sizes or not lengths:
        raise ValueError("a cost grid needs at least one size and one length")
    started = timer()
    cells = sorted(((s, n) for s in sizes for n in lengths if s * n <= WARMUP_MAX_TOKENS),
                   key=lambda c: (c[0] * c[1], c))
    timed: dict[tuple[int, int], float] = {}
    per_token = 0.0
    pool = ThreadPoolExecutor(len(group), "sluice-grid") if len(group) > 1 else None

    def best_of(engines: Sequence[Engine], batch: dict[str, Any]) -> float:
        best = float("inf")
        for _ in range(max(1, repeats)):
            t0 = timer()
            _run_all(engines, batch, pool)
            best = min(best, timer() - t0)
        return best

    try:
        for size, length in cells:
            left = budget_s - (timer() - started)
            if left <= 0 or per_token * size * length * repeats > left:
                break
            timed[(size, length)] = best_of(group, text_batch(engine.inputs, size, length))
            per_token = max(per_token, timed[(size, length)] / (size * length))
        alone: tuple[float, ...] = ()
        if len(group) > 1 and budget_s - (timer() - started) > 0:
            alone = tuple(best_of(group[:1], text_batch(engine.inputs, 1, n)) for n in lengths)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    complete = len(timed) == len(sizes) * len(lengths)
    seconds = tuple(tuple(_cell(timed, s, n) for n in lengths) for s in sizes)
    return CostGrid(tuple(sizes), tuple(lengths), seconds, timer() - started, complete, alone)


def _run_all(group: Sequence[Engine], batch: dict[str, Any], pool: ThreadPoolExecutor | None) -> None:
    """``batch`` on every engine of ``group`` at once, one pool thread each; the first error
    raised (after every call has ended)."""
    if len(group) == 1 or pool is None:
        for one in group:
            one.run(batch)
        return
    calls = [pool.submit(one.run, batch) for one in group]
    errors = [e for e in (call.exception() for call in calls) if e is not None]
    if errors:
        raise errors[0]


def _cell(timed: dict[tuple[int, int], float], size: int, length: int) -> float:
    """The timed cell, else the largest timed cell scaled by padded tokens (inf: none timed)."""
    if (size, length) in timed:
        return timed[(size, length)]
    if not timed:
        return float("inf")
    (s, n), seconds = max(timed.items(), key=lambda kv: (kv[0][0] * kv[0][1], kv[0]))
    return seconds * (size * length) / (s * n)
