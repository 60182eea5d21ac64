"""The engine-call watchdog, the stuck-call cap and OOM halving, on a fake clock and events."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from engines.errors import EngineOutOfMemory
from server.errors import EngineTimeout, InferenceFailed, ModelNotReady
from server.scheduler import Batcher, BatchPolicy, FakeClock, PreparedBatch
from server.scheduler.watchdog import WatchdogLimits
from tests.unit.batcher_fakes import FakeHandler, Text, hang_guard, next_loop_turn

LIMIT_S = 1.0


class OomHandler(FakeHandler):
    """Raises EngineOutOfMemory for a batch of more than ``fits`` payloads."""

    def __init__(self, fits: int) -> None:
        super().__init__()
        self.fits = fits

    def execute(self, prepared: PreparedBatch, instance: int) -> Sequence[str]:
        payloads: list[Text] = prepared.data
        if len(payloads) > self.fits:
            with self._lock:
                self.executed.append((instance, [p.id for p in payloads]))
            raise EngineOutOfMemory(f"CUDA out of memory for {len(payloads)}")
        return super().execute(prepared, instance)


class Replacements:
    """A ``replace_instance`` that records which instances it replaced, seen on the loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.replaced: list[int] = []
        self.event = asyncio.Event()
        self._lock = threading.Lock()

    def __call__(self, instance: int) -> None:
        with self._lock:
            self.replaced.append(instance)
        self._loop.call_soon_threadsafe(self.event.set)


async def make(handler: FakeHandler, clock: FakeClock, **kw: object) -> Batcher[Text, str]:
    batcher: Batcher[Text, str] = Batcher(
        handler, BatchPolicy(max_batch_size=4, max_queue_delay_us=0), name="w", clock=clock,
        **kw,  # type: ignore[arg-type]
    )
    await batcher.start()
    return batcher


async def until(condition: object, turns: int = 10_000) -> None:
    """Let the loop run callbacks (a worker thread's result arriving) until ``condition()``."""
    for _ in range(turns):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def test_limits_derive_from_the_expected_compute_and_back_off_bounded() -> None:
    derived = WatchdogLimits()
    assert derived.limit_s(0.001) == 30.0  # the floor
    assert derived.limit_s(4.5) == 45.0  # 10 x expected
    assert derived.limit_s(0.0) == 60.0  # nothing measured yet
    assert WatchdogLimits(call_timeout_s=0.25).limit_s(9.0) == 0.25
    assert [derived.backoff_s(n) for n in (1, 2, 3, 4)] == [0.0, 0.5, 1.0, 2.0]
    assert derived.backoff_s(40) == 30.0
    with pytest.raises(ValueError):
        WatchdogLimits(max_stuck_calls=0)


@hang_guard
async def test_stuck_call_fails_its_batch_504_then_replaced_then_unavailable_at_the_cap() -> None:
    clock = FakeClock()
    handler = FakeHandler(gated=True)
    replace = Replacements()
    batcher = await make(handler, clock, replace_instance=replace,
                         watchdog=WatchdogLimits(call_timeout_s=LIMIT_S, max_stuck_calls=2))
    first = batcher.submit_nowait(Text("a"))
    await handler.execute_starts.reach(1)
    clock.advance(LIMIT_S)
    with pytest.raises(EngineTimeout):
        await first
    assert batcher.stuck_calls == 1 and batcher.available
    await replace.event.wait()  # under the cap: the instance is replaced at once (no backoff)
    assert replace.replaced == [0]

    second = batcher.submit_nowait(Text("b"))
    await handler.execute_starts.reach(2)
    waiting = batcher.submit_nowait(Text("c"))  # queued behind the busy instance
    await next_loop_turn()
    assert batcher.pending_requests == 1
    clock.advance(LIMIT_S)
    with pytest.raises(EngineTimeout):
        await second
    with pytest.raises(ModelNotReady, match="unavailable"):
        await waiting  # answered at once, not left waiting for the instance
    assert batcher.stuck_calls == 2 and not batcher.available
    with pytest.raises(ModelNotReady, match="max_stuck_calls 2"):
        batcher.submit_nowait(Text("refused"))
    assert replace.replaced == [0]  # at the cap nothing more is loaded

    handler.release(2)  # the stuck calls finish: the instance comes back
    await until(lambda: batcher.stuck_calls == 0)
    assert batcher.available  # below the cap again (from the first finished call on)
    handler.release(1)
    assert await batcher.submit(Text("d")) == "d!"
    await batcher.stop()


@hang_guard
async def test_out_of_memory_splits_the_batch_in_halves_before_failing() -> None:
    clock = FakeClock()
    handler = OomHandler(fits=1)
    batcher = await make(handler, clock)
    futures = [batcher.submit_nowait(Text(f"t{i}")) for i in range(4)]
    assert [await f for f in futures] == ["t0!", "t1!", "t2!", "t3!"]
    assert [len(ids) for ids in handler.executed_ids()] == [4, 2, 1, 1, 2, 1, 1]

    handler.fits = 0  # not even one request fits: it fails, once
    lone = batcher.submit_nowait(Text("big"))
    with pytest.raises(InferenceFailed, match="out of memory"):
        await lone
    await next_loop_turn()
    await batcher.stop()


@hang_guard
async def test_a_call_within_its_limit_is_left_alone() -> None:
    clock = FakeClock()
    handler = FakeHandler(gated=True)
    batcher = await make(handler, clock, watchdog=WatchdogLimits(call_timeout_s=LIMIT_S))
    future = batcher.submit_nowait(Text("a"))
    await handler.execute_starts.reach(1)
    clock.advance(LIMIT_S / 2)
    handler.release()
    assert await future == "a!"
    assert batcher.stuck_calls == 0 and clock.timers == 0  # the watchdog timer is disarmed
    await batcher.stop()


class FlakyReplacements(Replacements):
    """Fails its first ``failures`` attempts."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    def __call__(self, instance: int) -> None:
        with self._lock:
            self.attempts += 1
            failing = self.attempts <= self.failures
        if failing:
            self._loop.call_soon_threadsafe(self.event.set)
            raise RuntimeError("cannot load a fresh instance")
        super().__call__(instance)


@hang_guard
async def test_a_failing_replacement_is_retried_after_a_backoff_on_the_clock() -> None:
    clock = FakeClock()
    handler = FakeHandler(gated=True)
    replace = FlakyReplacements(failures=1)
    batcher = await make(handler, clock, replace_instance=replace,
                         watchdog=WatchdogLimits(call_timeout_s=LIMIT_S, backoff_base_s=0.5))
    stuck = batcher.submit_nowait(Text("a"))
    await handler.execute_starts.reach(1)
    clock.advance(LIMIT_S)
    with pytest.raises(EngineTimeout):
        await stuck
    await replace.event.wait()  # the first attempt, at once, fails
    replace.event.clear()
    await clock.wait_for_timers(1)  # the backoff before the second attempt
    assert replace.attempts == 1 and clock.next_deadline == pytest.approx(LIMIT_S + 0.5)
    clock.advance(0.5)
    await replace.event.wait()
    assert replace.replaced == [0]
    handler.release(2)  # the stuck call, then a new request on the fresh instance
    assert await batcher.submit(Text("b")) == "b!"
    await batcher.stop()
