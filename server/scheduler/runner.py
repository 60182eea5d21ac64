"""Runs a model version's engine calls: its instances, their order, the watchdog, OOM halving.

:class:`EngineRunner` owns the engine instances of one model version (a pool of free ones):

- **Order.** Each formed batch gets a :class:`Turn` (:meth:`EngineRunner.turn`) when it leaves
  the queue; batches take an instance in the order they were formed (oldest first), whichever
  finishes preparing first: each waits for the previous one's turn.
- **Watchdog.** :meth:`EngineRunner.run` executes one prepared batch on its turn's instance in
  a worker thread. Each engine call gets a limit (:class:`~server.scheduler.watchdog.WatchdogLimits`,
  from the latency model's expected compute). Past it the call is abandoned: the batch fails with
  :class:`~server.errors.EngineTimeout` (504) at once, while the call keeps its thread (a running
  ONNX Runtime call cannot be cancelled), and :class:`~server.scheduler.stuck.StuckCalls` takes
  its instance (replaced, or the model UNAVAILABLE at ``max_stuck_calls``).
- **Out of memory.** A batch whose call raises :class:`~engines.errors.EngineOutOfMemory` is
  prepared again in halves, each run in turn (halved again if need be) before it fails.
- Every other error propagates to the batcher, which fails that batch only.
- **One hop when free.** A batch that finds its turn and an instance free at once
  (:meth:`EngineRunner.take_if_free`, the common case below saturation) is prepared and
  computed in one call on the instance's thread (:meth:`EngineRunner.prepare_and_run`): one
  thread hop instead of two, which is most of a lone request's scheduling latency. Under load
  the batch prepares in the worker pool while the instances compute, as before.

Each instance's calls run on a thread of its own (one call at a time per instance anyway), so an
abandoned call holds only its own thread, never one of the shared workers that prepare batches;
an abandoned instance's thread is retired and its replacement gets a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Generic, TypeVar

from engines.errors import EngineOutOfMemory
from server.errors import EngineTimeout
from server.scheduler.clock import Clock
from server.scheduler.futures import set_result_if_not_done
from server.scheduler.handler import BatchHandler, PreparedBatch
from server.scheduler.stuck import HealthCallback, StuckCalls
from server.scheduler.timings import timed
from server.scheduler.watchdog import WatchdogLimits

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")
T = TypeVar("T")


class Turn:
    """A formed batch's place in line for an engine instance, and that instance once taken."""

    __slots__ = ("instance", "previous", "taken")

    def __init__(self, previous: asyncio.Future[None] | None, taken: asyncio.Future[None]) -> None:
        self.previous = previous  # the turn of the batch formed before (None: first)
        self.taken = taken  # resolved once this batch took an instance, or ended
        self.instance: int | None = None  # held by the batch until the runner takes it over


class EngineRunner(Generic[P, R]):
    """Engine calls of one model version (see the module docstring)."""

    def __init__(
        self,
        handler: BatchHandler[P, R],
        instance_count: int,
        *,
        clock: Clock,
        executor: Callable[[], Executor | None],
        limits: WatchdogLimits | None = None,
        replace: Callable[[int], None] | None = None,
        on_health: HealthCallback | None = None,
        name: str = "model",
    ) -> None:
        self._handler = handler
        self._instances: asyncio.Queue[int] = asyncio.Queue()  # the free instances
        for instance in range(instance_count):
            self._instances.put_nowait(instance)
        self._last_turn: asyncio.Future[None] | None = None
        self._clock = clock
        self._executor = executor
        self._limits = limits  # None: no watchdog
        self._stuck = None if limits is None else StuckCalls(
            self._instances, limits, clock=clock, replace=replace, on_health=on_health, name=name
        )
        self._name = name
        self._threads: dict[int, ThreadPoolExecutor] = {}  # instance -> its engine-call thread

    @property
    def available(self) -> bool:
        """False while ``max_stuck_calls`` calls are stuck."""
        return self._stuck is None or self._stuck.available

    @property
    def reason(self) -> str:
        return "" if self._stuck is None else self._stuck.reason

    @property
    def stuck_calls(self) -> int:
        """Abandoned calls still running in their threads."""
        return 0 if self._stuck is None else self._stuck.count

    # -- instances and their order -------------------------------------------------------------

    def turn(self) -> Turn:
        """A new batch's turn, behind every batch formed before it."""
        previous, taken = self._last_turn, asyncio.get_running_loop().create_future()
        self._last_turn = taken
        return Turn(previous, taken)

    async def take_instance(self, turn: Turn) -> None:
        """Wait until the batches formed earlier took theirs, then for a free instance."""
        if turn.previous is not None:
            await asyncio.shield(turn.previous)
        turn.instance = await self._instances.get()
        set_result_if_not_done(turn.taken, None)

    def take_if_free(self, turn: Turn) -> bool:
        """Take an instance for ``turn`` now if every earlier batch took its own and one is free."""
        if turn.previous is not None and not turn.previous.done():
            return False
        if self._instances.empty():
            return False
        turn.instance = self._instances.get_nowait()
        set_result_if_not_done(turn.taken, None)
        return True

    def end_turn(self, turn: Turn) -> None:
        """The batch is done: the next may take its turn, and an instance it holds goes back."""
        set_result_if_not_done(turn.taken, None)
        if turn.instance is not None:
            self._instances.put_nowait(turn.instance)
            turn.instance = None

    async def run(
        self, payloads: Sequence[P], prepared: PreparedBatch, turn: Turn, expected_s: float
    ) -> tuple[list[R], float]:
        """Results (one per payload) and compute seconds of one batch on its turn's instance.

        The runner takes the instance over: it goes back to the pool when this returns or
        raises, except after a watchdog timeout (``EngineTimeout``), when the runner replaces it
        or brings it back later.
        """
        with self._holding(turn) as instance:
            return await self._run_halving(payloads, prepared, instance, expected_s)

    @contextlib.contextmanager
    def _holding(self, turn: Turn) -> Iterator[int]:
        """The turn's instance, taken over for the block: back in the pool when it ends, except
        after a watchdog timeout (then the runner replaces it or brings it back later)."""
        instance, turn.instance = turn.instance, None
        assert instance is not None, "the batch holds no instance (take it first)"
        abandoned = False
        try:
            yield instance
        except EngineTimeout:
            abandoned = True
            raise
        finally:
            if not abandoned:
                self._instances.put_nowait(instance)

    async def prepare_and_run(
        self, payloads: Sequence[P], turn: Turn, expected_s: float
    ) -> tuple[PreparedBatch, float, list[R], float]:
        """Prepare and compute one batch in a single call on its turn's instance thread (taken
        by :meth:`take_if_free`): the prepared batch, prepare seconds, results, compute seconds.
        The instance goes back as in :meth:`run`; out of memory retries in halves as there."""
        handler = self._handler
        with self._holding(turn) as instance:
            prepared_here: list[tuple[PreparedBatch, float]] = []  # kept if execute runs out of memory

            def both() -> Sequence[R]:
                started = time.perf_counter()
                prepared = handler.prepare(payloads)
                prepared_here.append((prepared, time.perf_counter() - started))
                return handler.execute(prepared, instance)

            try:
                results, total_s = await self._call(both, instance, expected_s)
            except EngineOutOfMemory:
                if len(payloads) < 2 or not prepared_here:
                    raise
                halves, compute_s = await self._halves(payloads, instance, expected_s)
                return *prepared_here[0], halves, compute_s
            prepared, prepare_s = prepared_here[0]
            return prepared, prepare_s, list(results), max(0.0, total_s - prepare_s)

    def close(self) -> None:
        """No more replacements (the batcher stopped)."""
        if self._stuck is not None:
            self._stuck.close()
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
            results, compute_s = await self._call(
                functools.partial(self._handler.execute, prepared, instance), instance, expected_s
            )
            return list(results), compute_s
        except EngineOutOfMemory:
            if len(payloads) < 2:
                raise
        return await self._halves(payloads, instance, expected_s)

    async def _halves(
        self, payloads: Sequence[P], instance: int, expected_s: float
    ) -> tuple[list[R], float]:
        """``payloads`` prepared and run in two halves (each halved again if need be)."""
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
        self, work: Callable[[], T], instance: int, expected_s: float
    ) -> tuple[T, float]:
        """One watched call of ``work`` on the instance's thread: its result and seconds, or
        ``EngineTimeout`` past its limit."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._thread_of(instance), timed(work))
        if self._limits is None or self._stuck is None:
            return await call
        limit_s = self._limits.limit_s(expected_s)
        expired: asyncio.Future[None] = loop.create_future()
        timer = self._clock.call_at(
            self._clock.now() + limit_s, functools.partial(set_result_if_not_done, expired, None)
        )
        try:
            await asyncio.wait((call, expired), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if call.done():
            result = call.result()
            self._stuck.call_finished()
            return result
        retired = self._threads.pop(instance, None)
        if retired is not None:  # the stuck call keeps it; it ends when the call returns
            retired.shutdown(wait=False)
        self._stuck.abandon(instance, call)
        raise EngineTimeout(
            f"model '{self._name}': the engine call ran past its limit of {limit_s:g} s "
            "(engine_call_timeout_s); its batch failed and the instance was taken out"
        )

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor(), call)
