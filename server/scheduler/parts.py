"""Per-candidate scheduling: one request split into parts that queue as requests of their own.

A ranking request of 1,000 candidates becomes parts of at most ``part_size`` rows, each queued
through the batcher's ordinary :meth:`~server.scheduler.batcher.Batcher.submit_nowait` (so
queue sizes count candidates, and parts of a large request interleave with small requests,
which the batcher merges into one batch). The results are reassembled in order.

Exactly one answer: the first part to fail (error, deadline, cancellation) cancels the parts
still queued and its error is the request's; cancelling the caller cancels every part.
A part refused at admission (``QueueFull``) cancels the parts already queued.

Stage timings: each part gets a :class:`~server.scheduler.timings.Timings` of its own, merged
into the caller's when the request ends (answered or failed): ``queue_s`` is the longest wait
of its parts (until the last one left the queue), ``prepare_s`` and ``compute_s`` add up over
the distinct batches its parts ran in (parts of one batch carry the very same figures, so that
batch counts once), ``batch_items`` is the largest of those batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from server.errors import RequestCancelled
from server.scheduler.timings import Timings

Rows = Mapping[str, np.ndarray]


class PartSubmitter(Protocol):
    def submit_nowait(
        self, payload: Any, *, items: int = 1, cost: int = 1, timeout_us: int | None = None,
        timings: Any = None, priority: int = 0,
    ) -> asyncio.Future[Any]: ...  # fmt: skip


def split_rows(rows: Rows, part_size: int) -> list[dict[str, np.ndarray]]:
    """``rows`` (arrays sharing their first axis) cut into consecutive parts of ``part_size``."""
    if part_size < 1:
        raise ValueError(f"part_size must be at least 1, got {part_size}")
    n = len(next(iter(rows.values())))
    return [{k: v[s : s + part_size] for k, v in rows.items()} for s in range(0, n, part_size)]


def _cancel(futures: Sequence[asyncio.Future[Any]]) -> None:
    for f in futures:
        if not f.done():
            f.cancel()


async def submit_parts(
    batcher: PartSubmitter,
    rows: Rows,
    *,
    part_size: int,
    timeout_us: int | None = None,
    priority: int = 0,
    join: Callable[[list[Any]], Any] | None = None,
    timings: Timings | None = None,
) -> Any:
    """Queue ``rows`` as parts of at most ``part_size`` rows and return their joined results
    (by default each output concatenated along the first axis, in the original order).
    ``timings`` receives the parts' merged stage durations (see the module)."""
    futures: list[asyncio.Future[Any]] = []
    parts_timings: list[Timings] = []
    try:
        try:
            for part in split_rows(rows, part_size):
                n = len(next(iter(part.values())))
                t = Timings() if timings is not None else None
                futures.append(batcher.submit_nowait(
                    part, items=n, cost=1, timeout_us=timeout_us, timings=t, priority=priority))
                if t is not None:
                    parts_timings.append(t)
        except BaseException:
            _cancel(futures)
            raise
        results = await _gather(futures)
        return join(results) if join is not None else concat(results)
    finally:
        if timings is not None:
            merge_timings(timings, parts_timings)


def merge_timings(into: Timings, parts: Sequence[Timings]) -> None:
    """Add the stage durations of one request's ``parts`` to ``into`` (see the module)."""
    if not parts:
        return
    into.queue_s += max(t.queue_s for t in parts)
    batches = {(t.prepare_s, t.compute_s, t.batch_items) for t in parts if t.batch_items}
    into.prepare_s += sum(b[0] for b in batches)
    into.compute_s += sum(b[1] for b in batches)
    into.batch_items = max((b[2] for b in batches), default=into.batch_items)


async def _gather(futures: list[asyncio.Future[Any]]) -> list[Any]:
    """The results of ``futures`` in order, once all succeeded; on the first failure the
    others are cancelled (every outcome retrieved) and that failure is raised."""
    finished: asyncio.Future[asyncio.Future[Any]] = asyncio.get_running_loop().create_future()
    left = len(futures)

    def on_done(f: asyncio.Future[Any]) -> None:  # one waiter for all parts, not one per wait
        nonlocal left
        left -= 1
        if not finished.done() and (left == 0 or f.cancelled() or f.exception() is not None):
            finished.set_result(f)

    for f in futures:
        f.add_done_callback(on_done)
    try:
        first = await finished
    except asyncio.CancelledError:
        _cancel(futures)
        raise
    if first.cancelled() or first.exception() is not None:
        _cancel(futures)
        for f in futures:  # retrieve, so no "exception never retrieved" warnings
            if f is not first:
                f.add_done_callback(_swallow)
        if first.cancelled():
            raise RequestCancelled("a part of the request was cancelled")
        exc = first.exception()
        assert exc is not None
        raise exc
    return [f.result() for f in futures]


def _swallow(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


def concat(results: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([r[k] for r in results], axis=0) for k in results[0]}
