"""Each request's Timings: queue time on the scheduler's clock, its batch's stage times and size."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import DeadlineExceeded, InferenceFailed
from server.scheduler import Timings
from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, make_rig

LONG_DELAY_US = 10_000_000


@hang_guard
async def test_timings_hold_queue_time_and_the_batch_they_ran_in_when_answered() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=2000)
    first, second = Timings(), Timings()
    a = rig.submit(Text("a"), items=3, timings=first)
    await rig.clock.wait_for_timers(1)
    rig.clock.advance(0.0015)
    b = rig.submit(Text("b"), timings=second)
    rig.clock.advance(0.0005)  # the oldest waited the delay: both go, as one batch of 4 items
    assert await asyncio.gather(a, b) == ["a!", "b!"]
    assert rig.handler.executed_ids() == [["a", "b"]]
    assert first.queue_s == pytest.approx(0.002) and second.queue_s == pytest.approx(0.0005)
    assert first.batch_items == second.batch_items == 4
    for t in (first, second):
        assert t.prepare_s > 0 and t.compute_s > 0  # worker-thread times: real, never zero
        assert t.version == 0  # the batcher leaves the version to the service
    assert (first.prepare_s, first.compute_s) == (second.prepare_s, second.compute_s)
    await rig.batcher.stop()


@hang_guard
async def test_waiting_in_the_queue_behind_busy_batches_is_queue_time() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=1, max_queue_delay_us=0)
    running, ahead, behind = Timings(), Timings(), Timings()
    futures = [rig.submit(Text("running"), timings=running)]
    await rig.handler.execute_starts.reach(1)
    futures.append(rig.submit(Text("ahead"), timings=ahead))
    await rig.handler.prepare_calls.reach(2)  # prepared ahead: out of the queue at once
    futures.append(rig.submit(Text("behind"), timings=behind))
    rig.clock.advance(0.004)  # both slots are taken: "behind" stays queued meanwhile
    rig.handler.release(3)
    assert await asyncio.gather(*futures) == ["running!", "ahead!", "behind!"]
    assert running.queue_s == 0.0 and ahead.queue_s == 0.0
    assert behind.queue_s == pytest.approx(0.004)
    assert running.batch_items == ahead.batch_items == behind.batch_items == 1
    await rig.batcher.stop()


@hang_guard
async def test_expired_request_records_its_queue_time_and_no_batch() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=LONG_DELAY_US)
    timings = Timings()
    late = rig.submit(Text("late"), timeout_us=1000, timings=timings)
    await rig.clock.wait_for_timers(2)
    rig.clock.advance(0.001)
    with pytest.raises(DeadlineExceeded):
        await late
    assert timings.queue_s == pytest.approx(0.001)
    assert (timings.prepare_s, timings.compute_s, timings.batch_items) == (0.0, 0.0, 0)
    await rig.batcher.stop()


@hang_guard
async def test_failed_batch_records_queue_time_only() -> None:
    handler = FakeHandler(fail_if=lambda t: t.id == "bad")
    rig = await make_rig(handler, max_batch_size=8, max_queue_delay_us=1000)
    timings = Timings()
    doomed = rig.submit(Text("bad"), timings=timings)
    await rig.clock.wait_for_timers(1)
    rig.clock.advance(0.001)
    with pytest.raises(InferenceFailed):
        await doomed
    assert timings.queue_s == pytest.approx(0.001)
    assert (timings.compute_s, timings.batch_items) == (0.0, 0)
    await rig.batcher.stop()


@hang_guard
async def test_a_request_submitted_twice_adds_its_times_up() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=1000)
    timings = Timings()
    for name in ("once", "twice"):
        future = rig.submit(Text(name), items=2 if name == "once" else 1, timings=timings)
        await rig.clock.wait_for_timers(1)
        rig.clock.advance(0.001)
        assert await future == f"{name}!"
    assert timings.queue_s == pytest.approx(0.002)
    assert timings.batch_items == 1  # the batch it ran in last
    await rig.batcher.stop()
