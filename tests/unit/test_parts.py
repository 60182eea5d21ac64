"""Per-candidate parts: split, reassembled in order, exactly one answer on failure or cancel."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from server.errors import DeadlineExceeded, InferenceFailed, QueueFull, RequestCancelled
from server.scheduler.parts import split_rows, submit_parts
from server.scheduler.timings import Timings


class FakeBatcher:
    """Hands out futures the test resolves; ``refuse_at`` raises QueueFull at that part."""

    def __init__(self, refuse_at: int | None = None) -> None:
        self.parts: list[tuple[dict[str, np.ndarray], int]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.refuse_at = refuse_at
        self.timings: list[Any] = []

    def submit_nowait(self, payload: Any, *, items: int = 1, cost: int = 1,
                      timeout_us: int | None = None, timings: Any = None,
                      priority: int = 0) -> asyncio.Future[Any]:
        if self.refuse_at is not None and len(self.parts) == self.refuse_at:
            raise QueueFull("queue full")
        self.parts.append((payload, items))
        self.timings.append(timings)
        f: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(f)
        return f

    def answer(self, i: int) -> None:
        self.futures[i].set_result({"score": self.parts[i][0]["item"].astype(np.float32) * 2})


def rows(n: int) -> dict[str, np.ndarray]:
    return {"user": np.full(n, 7), "item": np.arange(n)}


def test_split_rows_cuts_in_order() -> None:
    parts = split_rows(rows(10), 4)
    assert [len(p["item"]) for p in parts] == [4, 4, 2]
    assert np.concatenate([p["item"] for p in parts]).tolist() == list(range(10))
    with pytest.raises(ValueError):
        split_rows(rows(3), 0)


async def test_large_request_is_split_and_reassembled_in_order() -> None:
    b = FakeBatcher()
    task = asyncio.create_task(submit_parts(b, rows(1000), part_size=256))
    await asyncio.sleep(0)
    assert [items for _, items in b.parts] == [256, 256, 256, 232]  # queue counts candidates
    for i in (3, 1, 0, 2):  # parts finish out of order
        b.answer(i)
    out = await task
    assert out["score"].tolist() == [2.0 * i for i in range(1000)]


async def test_small_request_is_one_part() -> None:
    b = FakeBatcher()
    task = asyncio.create_task(submit_parts(b, rows(3), part_size=256))
    await asyncio.sleep(0)
    assert len(b.parts) == 1
    b.answer(0)
    assert (await task)["score"].tolist() == [0.0, 2.0, 4.0]


@pytest.mark.parametrize("error", [InferenceFailed("engine raised"), DeadlineExceeded("late")])
async def test_a_failed_part_fails_the_request_once_and_cancels_the_rest(error: Exception) -> None:
    b = FakeBatcher()
    task = asyncio.create_task(submit_parts(b, rows(600), part_size=200))
    await asyncio.sleep(0)
    b.answer(0)
    b.futures[1].set_exception(error)
    with pytest.raises(type(error)):
        await task
    assert b.futures[2].cancelled()


async def test_a_cancelled_part_is_a_request_cancelled_error() -> None:
    b = FakeBatcher()
    task = asyncio.create_task(submit_parts(b, rows(400), part_size=200))
    await asyncio.sleep(0)
    b.futures[0].cancel()
    with pytest.raises(RequestCancelled):
        await task
    assert b.futures[1].cancelled()


async def test_cancelling_the_caller_cancels_every_part() -> None:
    b = FakeBatcher()
    task = asyncio.create_task(submit_parts(b, rows(400), part_size=200))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(f.cancelled() for f in b.futures)


async def test_refused_part_cancels_the_parts_already_queued() -> None:
    b = FakeBatcher(refuse_at=2)
    with pytest.raises(QueueFull):
        await submit_parts(b, rows(1000), part_size=256)
    assert len(b.futures) == 2 and all(f.cancelled() for f in b.futures)


def ran(t: Timings, queue_s: float, compute_s: float, batch_items: int) -> None:
    """What the batcher writes into a part's timings when its batch has run."""
    t.queue_s, t.prepare_s, t.compute_s, t.batch_items = queue_s, compute_s / 10, compute_s, batch_items


async def test_parts_timings_merge_into_the_callers_once_per_batch() -> None:
    b = FakeBatcher()
    caller = Timings()
    task = asyncio.create_task(submit_parts(b, rows(600), part_size=200, timings=caller))
    await asyncio.sleep(0)
    assert len({id(t) for t in b.timings}) == 3 and caller not in b.timings  # one per part
    ran(b.timings[0], 0.001, 0.004, 1000)  # parts 0 and 1 ran in one batch of 1000 items
    ran(b.timings[1], 0.003, 0.004, 1000)
    ran(b.timings[2], 0.002, 0.002, 600)
    for i in range(3):
        b.answer(i)
    await task
    assert caller.queue_s == pytest.approx(0.003)  # until the last part left the queue
    assert caller.compute_s == pytest.approx(0.006)  # each batch once
    assert caller.prepare_s == pytest.approx(0.0006)
    assert caller.batch_items == 1000


async def test_a_failed_request_still_reports_its_parts_timings() -> None:
    b = FakeBatcher()
    caller = Timings()
    task = asyncio.create_task(submit_parts(b, rows(400), part_size=200, timings=caller))
    await asyncio.sleep(0)
    ran(b.timings[0], 0.002, 0.001, 200)
    b.answer(0)
    b.timings[1].queue_s = 0.005  # left the queue through its deadline
    b.futures[1].set_exception(DeadlineExceeded("late"))
    with pytest.raises(DeadlineExceeded):
        await task
    assert (caller.queue_s, caller.compute_s, caller.batch_items) == (0.005, 0.001, 200)


async def test_without_caller_timings_parts_get_none() -> None:
    b = FakeBatcher()
    task = asyncio.create_task(submit_parts(b, rows(300), part_size=200))
    await asyncio.sleep(0)
    b.answer(0)
    b.answer(1)
    await task
    assert b.timings == [None, None]
