"""Per-candidate scheduling: one request split into parts that queue as requests of their own.

A ranking request of 1,000 candidates becomes parts of at most ``part_size`` rows, each queued
through the batcher's ordinary :meth:`~server.scheduler.batcher.Batcher.submit_nowait` (so
queue sizes count candidates, and parts of a large request interleave with small requests,
which the batcher merges into one batch). The results are reassembled in order.

Exactly one answer: the first part to fail (error, deadline, cancellation) cancels the parts
still queued and its error is the request's; cancelling the caller cancels every part.
A part refused at admission (``QueueFull``) cancels the parts already queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from server.errors import RequestCancelled

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
) -> Any:
    """Queue ``rows`` as parts of at most ``part_size`` rows and return their joined results
    (by default each output concatenated along the first axis, in the original order)."""
    futures: list[asyncio.Future[Any]] = []
    try:
        for part in split_rows(rows, part_size):
            n = len(next(iter(part.values())))
            futures.append(
                batcher.submit_nowait(part, items=n, cost=1, timeout_us=timeout_us, priority=priority)
            )
    except BaseException:
        _cancel(futures)
        raise
    try:
        pending: set[asyncio.Future[Any]] = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for f in done:
                if f.cancelled() or f.exception() is not None:
                    _cancel(list(pending))
                    for p in pending:  # retrieve, so no "exception never retrieved" warnings
                        p.add_done_callback(_swallow)
                    if f.cancelled():
                        raise RequestCancelled("a part of the request was cancelled")
                    exc = f.exception()
                    assert exc is not None
                    raise exc
    except asyncio.CancelledError:
        _cancel(futures)
        raise
    results = [f.result() for f in futures]
    return join(results) if join is not None else concat(results)


def _swallow(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


def concat(results: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([r[k] for r in results], axis=0) for k in results[0]}
