"""The fake clock fires timers only when advanced; the real one maps onto the event loop."""

from __future__ import annotations

import asyncio

import pytest

from server.scheduler import FakeClock, MonotonicClock
from tests.unit.batcher_fakes import hang_guard


@hang_guard
async def test_fake_clock_fires_due_timers_in_deadline_order_at_their_deadline() -> None:
    clock = FakeClock()
    fired: list[tuple[str, float]] = []
    clock.call_at(2.0, lambda: fired.append(("late", clock.now())))
    clock.call_at(1.0, lambda: fired.append(("early", clock.now())))
    cancelled = clock.call_at(1.5, lambda: fired.append(("cancelled", clock.now())))
    cancelled.cancel()
    assert clock.timers == 2
    clock.advance(0.5)
    assert fired == []
    clock.advance(2.0)
    assert fired == [("early", 1.0), ("late", 2.0)]
    assert clock.now() == 2.5 and clock.timers == 0
    with pytest.raises(ValueError):
        clock.advance(-1.0)


@hang_guard
async def test_fake_clock_sleepers_wake_on_advance() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep_until(3.0))
    await clock.wait_for_timers(1)
    clock.advance(2.0)
    assert not sleeper.done()
    clock.advance(1.0)
    await sleeper
    await clock.sleep_until(1.0)  # already past: returns at once


@hang_guard
async def test_cancelled_sleeper_disarms_its_timer() -> None:
    clock = FakeClock()
    sleeper = asyncio.create_task(clock.sleep_until(3.0))
    await clock.wait_for_timers(1)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert clock.timers == 0


@hang_guard
async def test_monotonic_clock_follows_the_loop() -> None:
    clock = MonotonicClock()
    loop = asyncio.get_running_loop()
    assert clock.now() <= loop.time()
    await clock.sleep_until(clock.now() - 1.0)  # in the past: no wait
    fired = asyncio.Event()
    clock.call_at(clock.now() - 1.0, fired.set)  # overdue timers run on the next turn
    await fired.wait()
