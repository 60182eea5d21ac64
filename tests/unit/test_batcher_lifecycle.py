"""Start, stop and drain: no accepted request is ever left without an answer."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import ModelNotReady
from server.repository.config import BatchingConfig
from server.scheduler import Batcher, BatchPolicy, FakeClock
from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, make_rig

LONG_DELAY_US = 10_000_000


@hang_guard
async def test_stop_drains_the_queue_without_waiting_for_the_delay() -> None:
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=LONG_DELAY_US)
    futures = [rig.submit(Text(f"t{i}")) for i in range(3)]
    await rig.clock.wait_for_timers(1)
    await rig.batcher.stop()
    assert [f.result() for f in futures] == ["t0!", "t1!", "t2!"]
    assert not rig.batcher.running
    with pytest.raises(ModelNotReady):
        await rig.batcher.submit(Text("late"))
    assert rig.observer.queued == rig.observer.dequeued == 3
    assert rig.observer.outcomes() == ["success"] * 3 + ["rejected"]


@hang_guard
async def test_stop_fails_what_the_drain_timeout_leaves_and_leaves_nothing_pending() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=1, max_queue_delay_us=0)
    futures = [rig.submit(Text(f"t{i}")) for i in range(3)]
    await rig.handler.execute_starts.reach(1)
    await rig.handler.prepare_calls.reach(2)
    stopping = asyncio.create_task(rig.batcher.stop(drain_timeout_s=5.0))
    await rig.clock.wait_for_timers(1)  # the drain timeout
    assert not rig.batcher.running
    rig.clock.advance(5.0)
    await stopping
    assert all(f.done() for f in futures)
    assert all(isinstance(f.exception(), ModelNotReady) for f in futures)
    assert rig.batcher.pending_requests == 0
    rig.handler.release()  # the thread still computing "t0" finishes; nobody waits for it
    await rig.handler.execute_ends.reach(1)
    assert rig.handler.executed_ids() == [["t0"]]


@hang_guard
async def test_requests_are_refused_before_start_and_a_stopped_batcher_stays_stopped() -> None:
    batcher: Batcher[Text, str] = Batcher(FakeHandler(), BatchPolicy(), clock=FakeClock())
    with pytest.raises(ModelNotReady):
        batcher.submit_nowait(Text("early"))
    await batcher.start()
    await batcher.start()  # idempotent
    assert batcher.running
    await batcher.stop()
    await batcher.stop()  # idempotent
    with pytest.raises(ModelNotReady):
        await batcher.start()


@hang_guard
async def test_concurrent_stops_both_return_after_the_drain() -> None:
    rig = await make_rig(max_queue_delay_us=LONG_DELAY_US)
    future = rig.submit(Text("a"))
    await asyncio.gather(rig.batcher.stop(), rig.batcher.stop())
    assert future.result() == "a!"


def test_policy_from_config_maps_every_field() -> None:
    batching = BatchingConfig(
        max_batch_size=64,
        max_queue_delay_us=500,
        preferred_batch_sizes=(32, 16),
        max_batch_tokens=4096,
        max_queue_size=256,
        default_timeout_us=10_000,
    )
    policy = BatchPolicy.from_config(batching, instance_count=3)
    assert policy == BatchPolicy(
        max_batch_size=64,
        max_queue_delay_us=500,
        preferred_batch_sizes=(16, 32),
        max_batch_tokens=4096,
        max_queue_size=256,
        default_timeout_us=10_000,
        instance_count=3,
        length_aware=True,
    )
    assert policy.max_batches_in_flight == 4


@pytest.mark.parametrize(
    "bad",
    [
        {"max_batch_size": 0},
        {"max_queue_delay_us": -1},
        {"preferred_batch_sizes": (9,), "max_batch_size": 8},
        {"max_batch_tokens": 0},
        {"max_queue_size": 0},
        {"instance_count": 0},
    ],
)
def test_policy_rejects_out_of_range_values(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        BatchPolicy(**bad)  # type: ignore[arg-type]
