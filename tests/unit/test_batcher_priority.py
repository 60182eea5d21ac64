"""Priority levels in the batcher: higher levels go first under contention, each level's policy."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import DeadlineExceeded, InvalidInput, PayloadTooLarge, QueueFull
from server.scheduler.priority import Priorities, QueuePolicy
from tests.unit.batcher_fakes import FakeHandler, Rig, Text, hang_guard, make_rig

LONG_DELAY_US = 10_000_000


async def busy_rig(priorities: Priorities, max_batch_size: int = 1) -> tuple[Rig, list[asyncio.Future[str]]]:
    """One instance busy computing ("busy") and one batch prepared ahead ("ahead"): whatever is
    submitted next waits in the queue, which is where priorities act."""
    rig = await make_rig(FakeHandler(gated=True), max_batch_size=max_batch_size,
                         max_queue_delay_us=0, priorities=priorities)
    busy = rig.submit(Text("busy"))
    await rig.handler.execute_starts.reach(1)
    ahead = rig.submit(Text("ahead"), items=max_batch_size, priority=priorities.levels)  # full
    await rig.handler.prepare_calls.reach(2)
    return rig, [busy, ahead]


@hang_guard
async def test_higher_priority_overtakes_the_queue_under_contention() -> None:
    rig, first = await busy_rig(Priorities(levels=3, default_level=2))
    lows = [rig.submit(Text(f"low{i}"), priority=3) for i in range(3)]
    default = rig.submit(Text("default"))  # 0: the default level, 2
    high = rig.submit(Text("high"), priority=1)
    rig.handler.release(7)
    await asyncio.gather(*first, *lows, default, high)
    assert rig.handler.executed_ids() == [
        ["busy"], ["ahead"], ["high"], ["default"], ["low0"], ["low1"], ["low2"],
    ]
    await rig.batcher.stop()


@hang_guard
async def test_without_priorities_the_same_requests_run_in_arrival_order() -> None:
    rig, first = await busy_rig(Priorities())
    later = [rig.submit(Text(name)) for name in ("low0", "low1", "low2", "default", "high")]
    rig.handler.release(7)
    await asyncio.gather(*first, *later)
    assert rig.handler.executed_ids() == [
        ["busy"], ["ahead"], ["low0"], ["low1"], ["low2"], ["default"], ["high"],
    ]
    await rig.batcher.stop()


@hang_guard
async def test_a_batch_fills_with_the_highest_levels_before_grouping_by_length() -> None:
    rig, first = await busy_rig(Priorities(levels=2, default_level=2), max_batch_size=2)
    low_long = rig.submit(Text("low_long", tokens=50), priority=2)
    high_short = rig.submit(Text("high_short", tokens=10), priority=1)
    high_long = rig.submit(Text("high_long", tokens=90), priority=1)
    low_short = rig.submit(Text("low_short", tokens=10), priority=2)  # closest to high_short
    rig.handler.release(4)
    await asyncio.gather(*first, low_long, high_short, high_long, low_short)
    assert rig.handler.executed_ids()[2:] == [["high_short", "high_long"], ["low_long", "low_short"]]
    await rig.batcher.stop()


@hang_guard
async def test_priority_outside_the_levels_is_invalid() -> None:
    rig = await make_rig(priorities=Priorities(levels=2, default_level=1))
    with pytest.raises(InvalidInput, match=r"priority: must be an integer within 0\.\.2"):
        rig.submit(Text("x"), priority=3)
    plain = await make_rig()
    with pytest.raises(InvalidInput, match="priorities are off"):
        plain.submit(Text("x"), priority=1)
    assert rig.batcher.pending_requests == 0 and rig.observer.finished == []
    await rig.batcher.stop()
    await plain.batcher.stop()


@hang_guard
async def test_each_level_has_its_own_queue_size() -> None:
    priorities = Priorities(levels=2, default_level=2, queue_policies={2: QueuePolicy(max_queue_size=2)})
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=LONG_DELAY_US, priorities=priorities)
    lows = [rig.submit(Text(f"low{i}")) for i in range(2)]
    with pytest.raises(QueueFull, match="queue of priority level 2 full") as refused:
        rig.submit(Text("one too many"))
    assert refused.value.retry_after_s > 0
    with pytest.raises(PayloadTooLarge, match="priority level 2"):
        rig.submit(Text("never fits"), items=3)
    high = rig.submit(Text("high"), priority=1)  # level 1 is not full
    assert rig.observer.outcomes() == ["rejected"]
    await rig.batcher.stop()
    assert [await f for f in (*lows, high)] == ["low0!", "low1!", "high!"]


@hang_guard
async def test_delay_action_moves_an_expired_request_behind_its_level_and_still_runs_it() -> None:
    delay = QueuePolicy(default_timeout_us=1000, timeout_action="DELAY")
    rig, first = await busy_rig(Priorities(levels=1, default_level=1, default_queue_policy=delay))
    overdue = rig.submit(Text("overdue"))
    rig.clock.advance(0.001)  # its soft deadline: moved behind, not answered
    assert not overdue.done()
    fresh = rig.submit(Text("fresh"))
    rig.handler.release(4)
    assert await asyncio.gather(*first, overdue, fresh) == ["busy!", "ahead!", "overdue!", "fresh!"]
    assert rig.handler.executed_ids()[2:] == [["fresh"], ["overdue"]]
    assert rig.observer.outcomes().count("timeout") == 0
    await rig.batcher.stop()


@hang_guard
async def test_reject_action_answers_at_the_level_default_timeout() -> None:
    policy = QueuePolicy(default_timeout_us=1000)
    priorities = Priorities(levels=2, default_level=2, queue_policies={2: policy})
    rig = await make_rig(max_batch_size=8, max_queue_delay_us=LONG_DELAY_US, priorities=priorities)
    low = rig.submit(Text("low"), timeout_us=5_000_000)  # may not lengthen the level's default
    high = rig.submit(Text("high"), priority=1)  # level 1 has no policy: no deadline
    await rig.clock.wait_for_timers(2)
    rig.clock.advance(0.001)
    assert isinstance(low.exception(), DeadlineExceeded)
    assert not high.done()
    await rig.batcher.stop()
    assert await high == "high!"
