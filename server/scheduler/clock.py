"""Monotonic time for the scheduler, behind a protocol so tests can drive it by hand.

The batcher never sleeps in a loop: every wait is a timer (``call_at``) that sets an event or
resolves a future. :class:`MonotonicClock` maps timers onto the running event loop;
:class:`FakeClock` keeps them in a heap and fires them when a test calls :meth:`FakeClock.advance`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

from server.scheduler.futures import set_result_if_not_done


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds, and timers on them."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (at once if it already is)."""
        ...

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the event loop once ``now() >= deadline``.

        Must be called from the event loop's thread.
        """
        ...


async def wait_until(
    clock: Clock, changed: asyncio.Event, done: Callable[[], bool], timeout_s: float
) -> bool:
    """Wait until ``done()`` (checked whenever ``changed`` is set) or ``timeout_s`` on ``clock``
    have passed; return ``done()``."""
    timed_out = False

    def on_timeout() -> None:
        nonlocal timed_out
        timed_out = True
        changed.set()

    timer = clock.call_at(clock.now() + timeout_s, on_timeout)
    try:
        while not done() and not timed_out:
            changed.clear()
            await changed.wait()
    finally:
        timer.cancel()
    return done()


class MonotonicClock:
    """The real clock: the running loop's ``time()`` (``time.monotonic`` on the default loop)."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        if deadline <= loop.time():
            return
        future: asyncio.Future[None] = loop.create_future()
        handle = loop.call_at(deadline, set_result_if_not_done, future, None)
        try:
            await future
        finally:
            handle.cancel()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_at(deadline, callback)


class _FakeTimer:
    __slots__ = ("_clock", "callback", "cancelled", "deadline")

    def __init__(self, clock: FakeClock, deadline: float, callback: Callable[[], None]) -> None:
        self._clock = clock
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._clock._active -= 1


class FakeClock:
    """A clock that only moves when told to, for deterministic tests.

    Timers due at or before the new time fire synchronously inside :meth:`advance`, in deadline
    order, each seeing ``now()`` equal to its own deadline. :meth:`wait_for_timers` lets a test
    wait (on an event, not a sleep) until the code under test has armed its timers, which is how
    a test knows the scheduler has looked at its queue and decided to wait.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()
        self._active = 0
        self._armed: asyncio.Event | None = None

    def now(self) -> float:
        return self._now

    @property
    def timers(self) -> int:
        """Timers armed and not yet fired or cancelled."""
        return self._active

    @property
    def next_deadline(self) -> float | None:
        """The earliest armed deadline, if any."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _FakeTimer(self, deadline, callback)
        heapq.heappush(self._heap, (deadline, next(self._seq), timer))
        self._active += 1
        if self._armed is not None:
            self._armed.set()
        return timer

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_at(deadline, lambda: set_result_if_not_done(future, None))
        try:
            await future
        finally:
            timer.cancel()

    def advance(self, seconds: float) -> None:
        """Move time forward and fire every timer whose deadline is now reached."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        target = self._now + seconds
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > target:
                break
            deadline, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, deadline)
            timer.cancel()  # marks it spent
            timer.callback()
        self._now = target

    async def wait_for_timers(self, count: int = 1) -> None:
        """Wait until at least ``count`` timers are armed."""
        if self._armed is None:
            self._armed = asyncio.Event()
        while self._active < count:
            self._armed.clear()
            await self._armed.wait()

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
