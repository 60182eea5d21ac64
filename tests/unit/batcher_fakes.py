"""A fake batch handler and a recording observer for the scheduler's unit tests.

The handler runs in the batcher's worker threads like a real one. Tests follow it through
asyncio events that the handler sets on the loop (``call_soon_threadsafe``), and hold its
``execute`` calls with a semaphore gate, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from server.scheduler import Batcher, BatchPolicy, FakeClock, PreparedBatch, Timings
from server.scheduler.latency import BatchEstimate, LatencyModel

#: Longest a gated execute waits before it fails the test (a safety net, never reached).
GATE_TIMEOUT_S = 10.0
#: Longest a test may run before it fails instead of hanging (a safety net, never reached).
HANG_GUARD_S = 30.0


def hang_guard(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Fail an async test that hangs (a broken batcher leaves futures waiting) instead of
    blocking the suite. Nothing is timed: a passing test never comes near the limit."""

    @functools.wraps(test)
    async def guarded(*args: object, **kwargs: object) -> None:
        async with asyncio.timeout(HANG_GUARD_S):
            await test(*args, **kwargs)

    return guarded


@dataclass(frozen=True)
class Text:
    """A payload: an id and its token length."""

    id: str
    tokens: int = 10


class _Counter:
    """A count kept on the event loop that coroutines can wait to reach."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Event()

    def bump(self) -> None:
        self.value += 1
        self._changed.set()

    async def reach(self, target: int) -> None:
        while self.value < target:
            self._changed.clear()
            await self._changed.wait()


class FakeHandler:
    """Records every batch; ``execute`` returns ``"<id>!"`` per payload.

    ``gated``: each execute waits for :meth:`release`. ``fail_if``: execute raises for a batch
    containing a payload it matches; ``fail_prepare_if``: prepare does. ``drop_one``: execute
    returns one result too few.
    """

    def __init__(
        self,
        *,
        gated: bool = False,
        fail_if: Callable[[Text], bool] | None = None,
        fail_prepare_if: Callable[[Text], bool] | None = None,
        drop_one: bool = False,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._gated = gated
        self._gate = threading.Semaphore(0)
        self._fail_if = fail_if
        self._fail_prepare_if = fail_prepare_if
        self._drop_one = drop_one
        self._lock = threading.Lock()
        self._running: dict[int, int] = defaultdict(int)
        self.prepared: list[list[str]] = []
        self.executed: list[tuple[int, list[str]]] = []
        self.overlaps = 0
        """Times an execute started on an instance that was already executing."""
        self.max_concurrent = 0
        self.prepare_threads: list[str] = []
        """The thread each prepare ran on, in order."""
        self.execute_threads: list[str] = []
        self.prepare_calls = _Counter()
        self.execute_starts = _Counter()
        self.execute_ends = _Counter()

    def prepare(self, payloads: Sequence[Text]) -> PreparedBatch:
        ids = [p.id for p in payloads]
        with self._lock:
            self.prepared.append(ids)
            self.prepare_threads.append(threading.current_thread().name)
        self._loop.call_soon_threadsafe(self.prepare_calls.bump)
        if self._fail_prepare_if is not None and any(self._fail_prepare_if(p) for p in payloads):
            raise ValueError("cannot tokenize")
        longest = max(p.tokens for p in payloads)
        return PreparedBatch(
            data=list(payloads),
            real_tokens=sum(p.tokens for p in payloads),
            padded_tokens=len(payloads) * longest,
        )

    def execute(self, prepared: PreparedBatch, instance: int) -> Sequence[str]:
        payloads: list[Text] = prepared.data
        with self._lock:
            if self._running[instance]:
                self.overlaps += 1
            self._running[instance] += 1
            self.max_concurrent = max(self.max_concurrent, sum(self._running.values()))
            self.executed.append((instance, [p.id for p in payloads]))
            self.execute_threads.append(threading.current_thread().name)
        self._loop.call_soon_threadsafe(self.execute_starts.bump)
        try:
            if self._gated and not self._gate.acquire(timeout=GATE_TIMEOUT_S):
                raise TimeoutError("test gate never opened")
            if self._fail_if is not None and any(self._fail_if(p) for p in payloads):
                raise RuntimeError("engine exploded")
            results = [f"{p.id}!" for p in payloads]
            return results[:-1] if self._drop_one else results
        finally:
            with self._lock:
                self._running[instance] -= 1
            self._loop.call_soon_threadsafe(self.execute_ends.bump)

    def release(self, count: int = 1) -> None:
        """Let ``count`` gated executes finish."""
        for _ in range(count):
            self._gate.release()

    def executed_ids(self) -> list[list[str]]:
        with self._lock:
            return [ids for _, ids in self.executed]

    def seen_ids(self) -> set[str]:
        """Every id that reached prepare or execute."""
        with self._lock:
            return {i for ids in self.prepared for i in ids} | {i for _, ids in self.executed for i in ids}


async def next_loop_turn() -> None:
    """Return once every callback already scheduled on the loop has run.

    The loop runs ready callbacks first in, first out: a request's submit wakes the batch former
    before this helper schedules its own wake-up, so on return the former has looked at the
    queue. No time passes and nothing is polled.
    """
    loop = asyncio.get_running_loop()
    turned: asyncio.Future[None] = loop.create_future()
    loop.call_soon(turned.set_result, None)
    await turned


@dataclass
class RecordingObserver:
    queued: int = 0
    dequeued: int = 0
    finished: list[tuple[str, int]] = field(default_factory=list)
    batches: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(requests, items, real_tokens, padded_tokens) per executed batch."""

    def request_queued(self, items: int) -> None:
        self.queued += items

    def request_dequeued(self, items: int) -> None:
        self.dequeued += items

    def request_finished(self, outcome: str, items: int, queue_s: float, total_s: float) -> None:
        assert 0 <= queue_s <= total_s
        self.finished.append((outcome, items))

    def batch_executed(
        self,
        requests: int,
        items: int,
        real_tokens: int,
        padded_tokens: int,
        prepare_s: float,
        compute_s: float,
    ) -> None:
        assert prepare_s >= 0 and compute_s >= 0
        self.batches.append((requests, items, real_tokens, padded_tokens))

    def outcomes(self) -> list[str]:
        return [outcome for outcome, _ in self.finished]


@dataclass
class Rig:
    batcher: Batcher[Text, str]
    handler: FakeHandler
    clock: FakeClock
    observer: RecordingObserver

    def submit(
        self,
        text: Text,
        *,
        items: int = 1,
        timeout_us: int | None = None,
        timings: Timings | None = None,
        priority: int = 0,
    ) -> asyncio.Future[str]:
        return self.batcher.submit_nowait(
            text, items=items, cost=text.tokens, timeout_us=timeout_us, timings=timings,
            priority=priority,
        )


@dataclass
class FixedLatency:
    """A latency model with set figures (in fake-clock seconds), recording what it is fed.

    A batch computes in ``base_s + per_item_s x items`` and prepares in ``prepare_s``.
    """

    base_s: float = 0.0
    per_item_s: float = 0.0
    prepare_s: float = 0.0
    observed: list[tuple[int, int]] = field(default_factory=list)
    """(items, padded_tokens) of every batch observed."""

    def estimate(self, items: int, padded_tokens: int) -> BatchEstimate | None:
        return BatchEstimate(self.prepare_s, self.base_s + self.per_item_s * items)

    def observe(self, items: int, padded_tokens: int, prepare_s: float, compute_s: float) -> None:
        assert prepare_s >= 0 and compute_s >= 0
        self.observed.append((items, padded_tokens))


async def make_rig(
    handler: FakeHandler | None = None, *, latency: LatencyModel | None = None, **policy: object
) -> Rig:
    """A started batcher over a fake handler, a fake clock and a recording observer.

    ``latency``: the batcher's latency model (default: its own, learnt from the batches)."""
    handler = handler or FakeHandler()
    clock = FakeClock()
    observer = RecordingObserver()
    batcher: Batcher[Text, str] = Batcher(
        handler,
        BatchPolicy(**policy),  # type: ignore[arg-type]
        name="fake",
        clock=clock,
        observer=observer,
        latency=latency,
    )
    await batcher.start()
    return Rig(batcher, handler, clock, observer)
