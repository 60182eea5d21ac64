"""Runs a model version's engine calls: the watchdog, stuck calls, replacement, OOM halving.

:meth:`EngineRunner.run` executes one prepared batch on one engine instance in a worker thread
and owns that instance until it is free again:

- **Watchdog.** Each engine call gets a limit (:class:`~server.scheduler.watchdog.WatchdogLimits`,
  from the latency model's expected compute). Past it the call is abandoned: the batch fails with
  :class:`~server.errors.EngineTimeout` (504) at once, while the call keeps its thread (a running
  ONNX Runtime call cannot be cancelled). Its instance is taken out and, while fewer than
  ``max_stuck_calls`` calls are stuck, replaced by a fresh one (``replace``, which loads it);
  replacements after consecutive timeouts back off exponentially (bounded). At
  ``max_stuck_calls`` the model is UNAVAILABLE (``on_health(False, reason)``) and no instance is
  replaced; as stuck calls finish their instances come back, and below the cap it is available
  again (``on_health(True, "")``) and the instances still stuck are replaced.
- **Out of memory.** A batch whose call raises :class:`~engines.errors.EngineOutOfMemory` is
  prepared again in halves, each run in turn (halved again if need be) before it fails.
- Every other error propagates to the batcher, which fails that batch only.

Each instance's calls run on a thread of its own (one call at a time per instance anyway), so an
abandoned call holds only its own thread, never one of the shared workers that prepare batches;
an abandoned instance's thread is retired and its replacement gets a new one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from engines.errors import EngineOutOfMemory
from server.errors import EngineTimeout
from server.scheduler.clock import Clock
from server.scheduler.handler import BatchHandler, PreparedBatch
from server.scheduler.watchdog import WatchdogLimits

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")
T = TypeVar("T")

HealthCallback = Callable[[bool, str], None]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EngineRunner(Generic[P, R]):
    """Engine calls of one model version (see the module docstring)."""

    def __init__(
        self,
        handler: BatchHandler[P, R],
        instances: asyncio.Queue[int],
        *,
        clock: Clock,
        executor: Callable[[], Executor | None],
        limits: WatchdogLimits | None = None,
        replace: Callable[[int], None] | None = None,
        on_health: HealthCallback | None = None,
        name: str = "model",
    ) -> None:
        self._handler = handler
        self._instances = instances
        self._clock = clock
        self._executor = executor
        self._limits = limits  # None: no watchdog
        self._replace = replace
        self._on_health = on_health or (lambda available, reason: None)
        self._name = name
        self._stuck = 0
        self._failures = 0  # consecutive watchdog timeouts, reset by a call that finishes
        self._parked: set[int] = set()  # instances out until their stuck call finishes
        self._available = True
        self._reason = ""
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads: dict[int, ThreadPoolExecutor] = {}  # instance -> its engine-call thread

    @property
    def limits(self) -> WatchdogLimits | None:
        return self._limits

    @property
    def available(self) -> bool:
        """False while ``max_stuck_calls`` calls are stuck."""
        return self._available

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def stuck_calls(self) -> int:
        """Abandoned calls still running in their threads."""
        return self._stuck

    async def run(
        self, payloads: Sequence[P], prepared: PreparedBatch, instance: int, expected_s: float
    ) -> tuple[list[R], float]:
        """Results (one per payload) and compute seconds of one batch on ``instance``.

        ``instance`` goes back to the pool when this returns or raises, except after a watchdog
        timeout (``EngineTimeout``), when the runner replaces it or brings it back later.
        """
        abandoned = False
        try:
            return await self._run_halving(payloads, prepared, instance, expected_s)
        except EngineTimeout:
            abandoned = True
            raise
        finally:
            if not abandoned:
                self._instances.put_nowait(instance)

    def close(self) -> None:
        """No more replacements (the batcher stopped)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for thread in self._threads.values():
            thread.shutdown(wait=False)
        self._threads.clear()

    def _thread_of(self, instance: int) -> ThreadPoolExecutor:
        thread = self._threads.get(instance)
        if thread is None:
            thread = ThreadPoolExecutor(1, thread_name_prefix=f"sluice-{self._name}-engine{instance}")
            self._threads[instance] = thread
        return thread

    # -- one batch -----------------------------------------------------------------------------

    async def _run_halving(
        self, payloads: Sequence[P], prepared: PreparedBatch, instance: int, expected_s: float
    ) -> tuple[list[R], float]:
        try:
            results, compute_s = await self._call(prepared, instance, expected_s)
            return list(results), compute_s
        except EngineOutOfMemory:
            if len(payloads) < 2:
                raise
        half = len(payloads) // 2
        logger.warning("model %s: out of memory on a batch of %d requests; retrying in halves",
                       self._name, len(payloads))
        results_all: list[R] = []
        total_s = 0.0
        for part in (payloads[:half], payloads[half:]):
            part_prepared = await self._in_thread(functools.partial(self._handler.prepare, part))
            results, compute_s = await self._run_halving(
                part, part_prepared, instance, expected_s * len(part) / len(payloads)
            )
            results_all.extend(results)
            total_s += compute_s
        return results_all, total_s

    async def _call(
        self, prepared: PreparedBatch, instance: int, expected_s: float
    ) -> tuple[Sequence[R], float]:
        """One watched engine call: its result, or ``EngineTimeout`` past its limit."""
        execute = self._handler.execute

        def timed() -> tuple[Sequence[R], float]:
            started = time.perf_counter()
            result = execute(prepared, instance)
            return result, time.perf_counter() - started

        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._thread_of(instance), timed)
        if self._limits is None:
            return await call
        limit_s = self._limits.limit_s(expected_s)
        expired: asyncio.Future[None] = loop.create_future()
        timer = self._clock.call_at(self._clock.now() + limit_s, functools.partial(_resolve, expired))
        try:
            await asyncio.wait((call, expired), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if call.done():
            result = call.result()
            self._failures = 0
            return result
        self._abandon(instance, call)
        raise EngineTimeout(
            f"model '{self._name}': the engine call ran past its limit of {limit_s:g} s "
            "(engine_call_timeout_s); its batch failed and the instance was taken out"
        )

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor(), call)

    # -- stuck calls ---------------------------------------------------------------------------

    def _abandon(self, instance: int, call: asyncio.Future[Any]) -> None:
        assert self._limits is not None
        self._stuck += 1
        self._failures += 1
        retired = self._threads.pop(instance, None)
        if retired is not None:  # the stuck call keeps it; it ends when the call returns
            retired.shutdown(wait=False)
        call.add_done_callback(functools.partial(self._stuck_call_done, instance))
        logger.error("model %s: engine call on instance %d stuck past the watchdog limit "
                     "(%d stuck)", self._name, instance, self._stuck)
        if self._stuck >= self._limits.max_stuck_calls or self._replace is None:
            self._parked.add(instance)
            if self._stuck >= self._limits.max_stuck_calls:
                self._set_health(False, f"{self._stuck} engine calls are stuck past the watchdog "
                                        f"limit (max_stuck_calls {self._limits.max_stuck_calls})")
            return
        self._spawn_replacement(instance)

    def _stuck_call_done(self, instance: int, call: asyncio.Future[Any]) -> None:
        if not call.cancelled() and call.exception() is not None:
            logger.info("model %s: a stuck engine call ended with %r", self._name, call.exception())
        self._stuck -= 1
        logger.info("model %s: a stuck engine call finished (%d still stuck)", self._name, self._stuck)
        if instance in self._parked:  # never replaced: its engine is free again
            self._parked.discard(instance)
            if not self._closed:
                self._instances.put_nowait(instance)
        if not self._available and self._limits and self._stuck < self._limits.max_stuck_calls:
            self._set_health(True, "")
            if self._replace is not None and not self._closed:
                for parked in sorted(self._parked):  # still stuck: replace them now
                    self._parked.discard(parked)
                    self._spawn_replacement(parked)

    def _spawn_replacement(self, instance: int) -> None:
        task = asyncio.create_task(self._replace_later(instance, self._failures))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace_later(self, instance: int, failures: int) -> None:
        loop = asyncio.get_running_loop()
        replace = self._replace
        assert replace is not None and self._limits is not None
        while not self._closed:
            delay = self._limits.backoff_s(failures)
            if delay > 0:
                logger.warning("model %s: replacing instance %d in %.1f s (backoff)",
                               self._name, instance, delay)
                await self._clock.sleep_until(self._clock.now() + delay)
            if self._closed:
                return
            try:
                await loop.run_in_executor(None, replace, instance)
            except Exception:
                logger.exception("model %s: replacing instance %d failed", self._name, instance)
                failures += 1
                continue
            logger.warning("model %s: instance %d replaced by a fresh one", self._name, instance)
            self._instances.put_nowait(instance)
            return

    def _set_health(self, available: bool, reason: str) -> None:
        self._available, self._reason = available, reason
        if available:
            logger.warning("model %s: available again", self._name)
        else:
            logger.error("model %s: UNAVAILABLE: %s", self._name, reason)
        self._on_health(available, reason)
