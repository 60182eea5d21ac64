"""Deadline-aware admission and Retry-After, from the latency model (fake clock, set figures)."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import DeadlineExceeded, DeadlineUnreachable, QueueFull
from server.scheduler import BatchPolicy
from server.scheduler.forecast import forecast
from server.scheduler.priority import Priorities
from tests.unit.batcher_fakes import FakeHandler, FixedLatency, Rig, Text, hang_guard, make_rig

MS = 0.001
TEN_MS_AN_ITEM = FixedLatency(per_item_s=10 * MS)


async def loaded_rig(
    latency: FixedLatency, queued: int, **policy: object
) -> tuple[Rig, list[asyncio.Future[str]]]:
    """One batch computing (10 ms, started now), one prepared ahead (10 ms), ``queued`` queued.

    One item a batch, so the work ahead of a new request at the same level is
    10 + 10 + queued x 10 ms, and it finishes one batch (10 ms) later."""
    rig = await make_rig(FakeHandler(gated=True), latency=latency, max_batch_size=1,
                         max_queue_delay_us=0, **policy)
    futures = [rig.submit(Text("busy"))]
    await rig.handler.execute_starts.reach(1)
    futures.append(rig.submit(Text("ahead")))
    await rig.handler.prepare_calls.reach(2)
    futures += [rig.submit(Text(f"q{i}")) for i in range(queued)]
    return rig, futures


async def finish(rig: Rig, futures: list[asyncio.Future[str]]) -> None:
    rig.handler.release(len(futures))
    await asyncio.gather(*futures)
    await rig.batcher.stop()


@hang_guard
async def test_a_deadline_the_queue_ahead_makes_unreachable_is_refused_at_once() -> None:
    rig, futures = await loaded_rig(TEN_MS_AN_ITEM, queued=3)  # answered after 60 ms
    with pytest.raises(DeadlineUnreachable) as refused:
        rig.submit(Text("hurried"), timeout_us=50_000)
    assert isinstance(refused.value, QueueFull)  # 429 with Retry-After
    assert refused.value.retry_after_s == pytest.approx(50 * MS)  # the work ahead drains
    assert "cannot be met" in str(refused.value)
    futures.append(rig.submit(Text("patient"), timeout_us=65_000))
    assert rig.observer.outcomes() == ["rejected"]
    await finish(rig, futures)
    assert "hurried" not in rig.handler.seen_ids()


@hang_guard
async def test_progress_of_the_running_batch_counts() -> None:
    rig, futures = await loaded_rig(TEN_MS_AN_ITEM, queued=3)
    rig.clock.advance(8 * MS)  # the running batch has 2 ms left: answered after 52 ms
    futures.append(rig.submit(Text("now it fits"), timeout_us=55_000))
    with pytest.raises(DeadlineUnreachable):
        rig.submit(Text("still too short"), timeout_us=50_000)
    await finish(rig, futures)


@hang_guard
async def test_only_the_queue_at_the_same_level_or_above_is_ahead() -> None:
    priorities = Priorities(levels=2, default_level=2)
    rig, futures = await loaded_rig(TEN_MS_AN_ITEM, queued=3, priorities=priorities)
    # priority 1 skips the three queued at level 2: 10 + 10 + its own 10 ms
    futures.append(rig.submit(Text("high"), timeout_us=35_000, priority=1))
    with pytest.raises(DeadlineUnreachable):
        rig.submit(Text("low"), timeout_us=35_000, priority=2)
    await finish(rig, futures)
    assert rig.handler.executed_ids()[2] == ["high"]


@hang_guard
async def test_a_deadline_shorter_than_any_batch_could_take_is_exceeded_at_once() -> None:
    rig = await make_rig(latency=FixedLatency(base_s=5 * MS), max_queue_delay_us=0)
    with pytest.raises(DeadlineExceeded, match="shorter than its batch takes on an idle model"):
        rig.submit(Text("impossible"), timeout_us=1000)
    assert await rig.submit(Text("possible"), timeout_us=10_000) == "possible!"
    assert rig.observer.outcomes() == ["rejected", "success"]
    await rig.batcher.stop()


@hang_guard
async def test_a_lone_request_waits_out_the_queue_delay_first() -> None:
    rig = await make_rig(latency=FixedLatency(base_s=1 * MS), max_batch_size=8,
                         max_queue_delay_us=20_000)
    with pytest.raises(DeadlineUnreachable):
        rig.submit(Text("alone"), timeout_us=15_000)  # 20 ms delay + 1 ms > 15 ms
    waiting = rig.submit(Text("first"))
    rig.clock.advance(10 * MS)
    futures = [waiting, rig.submit(Text("joins"), timeout_us=15_000)]  # 10 ms left + 1 ms
    rig.clock.advance(10 * MS)
    assert await asyncio.gather(*futures) == ["first!", "joins!"]
    await rig.batcher.stop()


@hang_guard
async def test_no_estimate_admits_everything() -> None:
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=1, max_queue_delay_us=0)
    futures = [rig.submit(Text("busy"))]
    await rig.handler.execute_starts.reach(1)
    futures.append(rig.submit(Text("tight"), timeout_us=1))  # nothing measured: admitted
    rig.handler.release(2)
    assert await asyncio.gather(*futures) == ["busy!", "tight!"]
    await rig.batcher.stop()


@hang_guard
async def test_queue_full_retry_after_comes_from_the_latency_model() -> None:
    rig, futures = await loaded_rig(TEN_MS_AN_ITEM, queued=3, max_queue_size=3)
    with pytest.raises(QueueFull) as refused:
        rig.submit(Text("one too many"))
    assert refused.value.retry_after_s == pytest.approx(50 * MS)
    await finish(rig, futures)


@hang_guard
async def test_every_executed_batch_feeds_the_latency_model() -> None:
    latency = FixedLatency()
    rig = await make_rig(latency=latency, max_batch_size=4, max_queue_delay_us=0)
    assert await rig.submit(Text("a", tokens=7), items=3) == "a!"
    assert latency.observed == [(3, 7)]  # the fake handler pads one payload to its tokens
    await rig.batcher.stop()


def test_forecast_shares_the_backlog_and_the_queue_among_instances() -> None:
    latency = FixedLatency(base_s=2 * MS, per_item_s=1 * MS, prepare_s=1 * MS)
    policy = BatchPolicy(max_batch_size=4, instance_count=2)
    expected = forecast(latency, policy, ahead_items=8, ahead_tokens=80, items=2, tokens=20,
                        backlog_s=12 * MS, delay_left_s=0.0)
    assert expected is not None
    # full batch: 6 ms compute, 1 ms prepare; a batch every max(6 / 2, 1) = 3 ms
    assert expected.drain_s == pytest.approx((6 + 2 * 3) * MS)
    # 10 items: batches 4, 4, 2; its own (2 items: 4 + 1 ms) starts after 6 + 2 x 3 ms
    assert expected.finish_s == pytest.approx((6 + 6 + 5) * MS)
    assert expected.alone_s == pytest.approx(5 * MS)


def test_forecast_cuts_batches_by_the_token_budget() -> None:
    latency = FixedLatency(per_item_s=1 * MS)
    policy = BatchPolicy(max_batch_size=32, max_batch_tokens=100)
    expected = forecast(latency, policy, ahead_items=20, ahead_tokens=20 * 50, items=1,
                        tokens=50, backlog_s=0.0, delay_left_s=0.0)
    assert expected is not None  # 50 tokens an item: batches of 2 items (2 ms each)
    assert expected.drain_s == pytest.approx(20 * MS)
    assert expected.finish_s == pytest.approx((10 * 2 + 1) * MS)
