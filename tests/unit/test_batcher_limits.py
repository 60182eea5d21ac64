"""Bounded queue, deadlines and cancellation: refused or dropped work never reaches compute."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import DeadlineExceeded, PayloadTooLarge, QueueFull
from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, make_rig

LONG_DELAY_US = 10_000_000


@hang_guard
async def test_full_queue_rejects_at_once_with_retry_after() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_size=3, max_queue_delay_us=LONG_DELAY_US)
    waiting = [rig.submit(Text("a"), items=2), rig.submit(Text("b"))]
    await rig.clock.wait_for_timers(1)  # the former looked and chose to wait
    with pytest.raises(QueueFull) as refused:
        await rig.batcher.submit(Text("c"))
    assert refused.value.retry_after_s > 0
    assert rig.batcher.pending_items == 3 and rig.batcher.pending_requests == 2
    assert rig.observer.outcomes() == ["rejected"]
    await rig.batcher.stop()  # flushes the queue
    assert [f.result() for f in waiting] == ["a!", "b!"]
    assert "c" not in rig.handler.seen_ids()


@hang_guard
async def test_request_that_can_never_fit_the_queue_is_too_large() -> None:
    rig = await make_rig(max_queue_size=4)
    with pytest.raises(PayloadTooLarge):
        rig.submit(Text("huge"), items=5)
    await rig.batcher.stop()


@hang_guard
async def test_deadline_answers_at_the_deadline_and_is_never_computed() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=LONG_DELAY_US)
    late = rig.submit(Text("late"), timeout_us=1000)
    patient = rig.submit(Text("patient"))
    await rig.clock.wait_for_timers(2)  # the deadline and the batch delay
    rig.clock.advance(0.001)
    assert late.done()  # answered by its timer, not by the next batch
    with pytest.raises(DeadlineExceeded):
        late.result()
    assert rig.batcher.pending_requests == 1
    rig.clock.advance(LONG_DELAY_US / 1e6)
    assert await patient == "patient!"
    assert rig.handler.executed_ids() == [["patient"]]
    assert "late" not in rig.handler.seen_ids()
    assert rig.observer.outcomes() == ["timeout", "success"]
    await rig.batcher.stop()


@hang_guard
async def test_policy_default_timeout_applies_and_zero_means_none() -> None:
    rig = await make_rig(max_queue_delay_us=LONG_DELAY_US, default_timeout_us=500)
    defaulted = rig.submit(Text("defaulted"))
    unbounded = rig.submit(Text("unbounded"), timeout_us=0)
    await rig.clock.wait_for_timers(2)
    rig.clock.advance(0.0005)
    assert isinstance(defaulted.exception(), DeadlineExceeded)
    assert not unbounded.done()
    rig.clock.advance(LONG_DELAY_US / 1e6)
    assert await unbounded == "unbounded!"
    await rig.batcher.stop()


@hang_guard
async def test_deadline_passing_while_batch_waits_for_an_instance_skips_compute() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=1, max_queue_delay_us=0)
    first = rig.submit(Text("first"))
    await rig.handler.execute_starts.reach(1)
    late = rig.submit(Text("late"), timeout_us=1000)
    await rig.handler.prepare_calls.reach(2)  # prepared ahead, waiting for the busy instance
    rig.clock.advance(0.001)
    assert isinstance(late.exception(), DeadlineExceeded)
    rig.handler.release()
    assert await first == "first!"
    after = rig.submit(Text("after"))
    rig.handler.release()
    assert await after == "after!"
    assert rig.handler.executed_ids() == [["first"], ["after"]]
    await rig.batcher.stop()


@hang_guard
async def test_cancelled_request_is_dropped_before_compute() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=LONG_DELAY_US)
    waiting = asyncio.create_task(rig.batcher.submit(Text("gone"), cost=10))
    await rig.clock.wait_for_timers(1)
    assert rig.batcher.pending_requests == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert rig.batcher.pending_requests == 0 and rig.batcher.pending_items == 0
    assert rig.observer.outcomes() == ["cancelled"]
    kept = rig.submit(Text("kept"))
    await rig.clock.wait_for_timers(1)
    rig.clock.advance(LONG_DELAY_US / 1e6)
    assert await kept == "kept!"
    assert rig.handler.executed_ids() == [["kept"]]
    assert "gone" not in rig.handler.seen_ids()
    await rig.batcher.stop()


@hang_guard
async def test_request_cancelled_after_its_batch_was_prepared_is_not_computed() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=2, max_queue_delay_us=0)
    first = rig.submit(Text("first"))
    await rig.handler.execute_starts.reach(1)
    gone, kept = rig.submit(Text("gone")), rig.submit(Text("kept"))
    await rig.handler.prepare_calls.reach(2)
    gone.cancel()
    rig.handler.release(2)
    assert await first == "first!"
    assert await kept == "kept!"
    assert rig.handler.executed_ids() == [["first"], ["kept"]]  # prepared again without "gone"
    assert sorted(rig.observer.outcomes()) == ["cancelled", "success", "success"]
    await rig.batcher.stop()
