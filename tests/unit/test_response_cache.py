"""The response cache: hits, LRU bound, in-flight de-duplication, failures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.cache import ResponseCache


class Counting:
    """A compute function that records its calls and can be held on an event."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self, texts: tuple[str, ...]) -> np.ndarray:
        self.calls.append(texts)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


async def test_hits_skip_compute_and_keep_order() -> None:
    cache, compute = ResponseCache(10), Counting()
    rows, hits = await cache.probabilities(["aa", "b"], compute)
    assert hits == 0 and rows[:, 0].tolist() == [2, 1]
    rows, hits = await cache.probabilities(["b", "c  c", "aa", "c c"], compute)
    assert hits == 3  # "b", "aa" cached; the second "c c" shares the first's computation
    assert rows[:, 0].tolist() == [1, 4, 2, 4]
    assert compute.calls == [("aa", "b"), ("c  c",)]
    assert (cache.hits, cache.misses) == (3, 3)


async def test_capacity_bounds_memory_lru() -> None:
    cache, compute = ResponseCache(2), Counting()
    await cache.probabilities(["a"], compute)
    await cache.probabilities(["b"], compute)
    await cache.probabilities(["a"], compute)  # a is now most recent
    await cache.probabilities(["c"], compute)  # evicts b
    assert len(cache) == 2
    await cache.probabilities(["b"], compute)
    assert compute.calls == [("a",), ("b",), ("c",), ("b",)]


async def test_identical_inputs_in_flight_are_computed_once() -> None:
    cache, compute = ResponseCache(10), Counting()
    compute.gate.clear()
    first = asyncio.create_task(cache.probabilities(["same"], compute))
    await asyncio.sleep(0)  # let the first reach compute
    second = asyncio.create_task(cache.probabilities(["same"], compute))
    await asyncio.sleep(0)
    compute.gate.set()
    (r1, h1), (r2, h2) = await asyncio.gather(first, second)
    assert compute.calls == [("same",)]
    assert (h1, h2) == (0, 1)
    np.testing.assert_array_equal(r1, r2)


async def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache, compute = ResponseCache(10), Counting()
    compute.gate.clear()
    compute.fail = RuntimeError("engine down")
    first = asyncio.create_task(cache.probabilities(["x"], compute))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.probabilities(["x"], compute))
    await asyncio.sleep(0)
    compute.gate.set()
    for task in (first, second):
        with pytest.raises(RuntimeError, match="engine down"):
            await task
    compute.fail = None
    rows, hits = await cache.probabilities(["x"], compute)
    assert hits == 0 and rows.shape == (1, 2)


async def test_cancelled_leader_lets_followers_compute() -> None:
    cache, compute = ResponseCache(10), Counting()
    compute.gate.clear()
    leader = asyncio.create_task(cache.probabilities(["x"], compute))
    await asyncio.sleep(0)
    follower = asyncio.create_task(cache.probabilities(["x"], compute))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    compute.gate.set()
    rows, _ = await follower
    assert rows.shape == (1, 2)
    assert leader.cancelled()
    assert len(compute.calls) == 2
