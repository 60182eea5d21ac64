"""The dynamic micro-batcher of one model version.

Flow, all on the event loop except the two worker-thread calls::

    submit -> queue -> former -> [prepare in a thread] -> free instance -> [execute in a thread]
                                                                         -> futures resolved

- The former is one task woken by an event (a new request, a finished batch, the delay timer,
  stop); it never polls. It forms batches while fewer than ``instance_count + 1`` are out of the
  queue, so one batch is prepared (tokenized) while the instances execute, and everything else
  stays queued where it can still be grouped, time out or be cancelled. Which requests go and
  when is decided by :mod:`server.scheduler.forming`.
- Deadlines are timers: a request whose deadline passes is answered ``DeadlineExceeded`` at
  once: while queued; filtered out of its batch (which is prepared again without it) if it was
  already taken from the queue; or while its batch computes, whose late result for it is then
  dropped. A level whose queue policy says ``DELAY`` moves the request behind instead.
- Priorities (:mod:`server.scheduler.priority`): the queue is kept in level order, so batches
  take higher levels first. Admission (:mod:`server.scheduler.admission`) refuses at once a
  request that the :mod:`~server.scheduler.latency` model says cannot meet its deadline behind
  the work ahead of it, and sizes ``Retry-After``; every executed batch feeds that model.
- Engine calls go through :class:`~server.scheduler.runner.EngineRunner`: a watchdog per call
  (504 past its limit; the instance is replaced, or the model UNAVAILABLE at ``max_stuck_calls``,
  which fails the requests not computing and refuses new ones until it recovers), and halving
  of a batch that ran out of memory.
- Every accepted request is answered exactly once, through ``_succeed`` / ``_fail``, which do
  nothing for a request already answered; a failing batch fails only its own requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import time
from collections.abc import Callable
from itertools import islice
from typing import Generic, Literal, TypeVar

from server.errors import (
    DeadlineExceeded,
    EngineTimeout,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    SluiceError,
)
from server.scheduler.admission import Admission
from server.scheduler.clock import Clock, MonotonicClock, TimerHandle
from server.scheduler.forming import may_be_ready, ready_to_go, select, window_size
from server.scheduler.handler import BatchHandler, PreparedBatch
from server.scheduler.latency import LatencyModel, MeasuredLatency
from server.scheduler.observer import BatchObserver, NullObserver
from server.scheduler.policy import BatchPolicy
from server.scheduler.priority import LevelQueue, rank, request_timeout_us
from server.scheduler.runner import EngineRunner
from server.scheduler.timings import Timings
from server.scheduler.watchdog import WatchdogLimits

__all__ = ["BatchHandler", "BatchObserver", "Batcher", "NullObserver", "PreparedBatch", "Timings"]

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")
T = TypeVar("T")


class _Request(Generic[P, R]):
    __slots__ = (
        "computing",
        "cost",
        "deadline",
        "delayed",
        "dequeued_at",
        "enqueued_at",
        "finished",
        "future",
        "items",
        "level",
        "payload",
        "queued",
        "seq",
        "timeout_us",
        "timer",
        "timings",
    )

    def __init__(
        self,
        seq: int,
        payload: P,
        items: int,
        cost: int,
        future: asyncio.Future[R],
        enqueued_at: float,
        timeout_us: int,
        timings: Timings | None,
    ) -> None:
        self.seq = seq
        self.payload = payload
        self.items = items
        self.cost = cost
        self.future = future
        self.enqueued_at = enqueued_at
        self.timeout_us = timeout_us
        self.deadline = enqueued_at + timeout_us / 1_000_000 if timeout_us > 0 else None
        self.timer: TimerHandle | None = None
        self.dequeued_at: float | None = None
        self.queued = True
        self.computing = False
        self.finished = False
        self.timings = timings
        self.level = 1  # priority level, 1 the highest
        self.delayed = False  # its soft deadline passed (DELAY): behind its level


_State = Literal["new", "running", "stopping", "stopped"]


class Batcher(Generic[P, R]):
    """Queues requests for one model version and runs them in batches on its instances."""

    def __init__(
        self,
        handler: BatchHandler[P, R],
        policy: BatchPolicy,
        *,
        name: str = "",
        clock: Clock | None = None,
        observer: BatchObserver | None = None,
        executor: concurrent.futures.Executor | None = None,
        latency: LatencyModel | None = None,
        watchdog: WatchdogLimits | None = None,
        replace_instance: Callable[[int], None] | None = None,
    ) -> None:
        """``watchdog``: engine call limits (None: no watchdog); ``replace_instance(i)``: loads a fresh engine
        instance ``i`` in place of one whose call got stuck (blocking; run in a thread)."""
        self._handler = handler
        self._policy = policy
        self._name = name or "model"
        self._clock: Clock = clock or MonotonicClock()
        self._observer: BatchObserver = observer or NullObserver()
        self._executor = executor
        self._owns_executor = executor is None
        self._state: _State = "new"
        # batch order: priority level, then (within a level) not delayed first, then oldest first
        self._queue: LevelQueue[_Request[P, R]] = LevelQueue(policy.priorities.count)
        self._live: dict[int, _Request[P, R]] = {}  # accepted and not yet answered
        self._seq = itertools.count()
        self._pending_items = 0
        self._cost_ceiling = 0  # >= every queued cost; reset when the queue empties
        self._in_flight = 0  # batches out of the queue and not finished
        # Batches take an instance in the order they were formed (oldest first), whichever
        # finishes preparing first: each waits for the previous one's turn.
        self._last_turn: asyncio.Future[None] | None = None
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._instances: asyncio.Queue[int] = asyncio.Queue()
        for instance in range(policy.instance_count):
            self._instances.put_nowait(instance)
        self._wakeup = asyncio.Event()  # the former has something to look at
        self._changed = asyncio.Event()  # a request was answered or a batch finished
        self._stopped = asyncio.Event()
        self._former: asyncio.Task[None] | None = None
        self._delay_timer: TimerHandle | None = None
        self._delay_deadline: float | None = None
        self._admission = Admission(policy, latency or MeasuredLatency(), self._name)
        self._backlog = self._admission.backlog  # expected compute of the batches out of the queue
        self._runner: EngineRunner[P, R] = EngineRunner(
            handler, self._instances, clock=self._clock, executor=lambda: self._executor,
            limits=watchdog, replace=replace_instance, on_health=self._on_health,
            name=self._name,
        )

    # -- public surface ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`: requests are accepted."""
        return self._state == "running"

    @property
    def pending_items(self) -> int:
        """Items waiting in the queue (not yet in a batch)."""
        return self._pending_items

    @property
    def pending_requests(self) -> int:
        """Requests waiting in the queue (not yet in a batch)."""
        return len(self._queue)

    @property
    def latency(self) -> LatencyModel:
        """The latency model admission consults and every executed batch feeds."""
        return self._admission.latency

    @property
    def available(self) -> bool:
        """Running, and not UNAVAILABLE because of stuck engine calls."""
        return self.running and self._runner.available

    @property
    def unavailable_reason(self) -> str:
        return self._runner.reason

    @property
    def stuck_calls(self) -> int:
        """Engine calls abandoned by the watchdog and still running in their threads."""
        return self._runner.stuck_calls

    @property
    def batches_in_flight(self) -> int:
        """Batches taken from the queue and not finished (preparing, waiting or executing)."""
        return self._in_flight

    async def start(self) -> None:
        """Start forming batches. Idempotent while running; a stopped batcher cannot restart."""
        if self._state == "running":
            return
        if self._state != "new":
            raise ModelNotReady(f"model '{self._name}': its scheduler was stopped")
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._policy.max_batches_in_flight,
                thread_name_prefix=f"sluice-{self._name}",
            )
        self._former = asyncio.create_task(self._form_loop(), name=f"batcher-{self._name}")
        self._former.add_done_callback(self._on_former_done)
        self._state = "running"

    def submit_nowait(
        self,
        payload: P,
        *,
        items: int = 1,
        cost: int = 1,
        timeout_us: int | None = None,
        timings: Timings | None = None,
        priority: int = 0,
    ) -> asyncio.Future[R]:
        """Queue a request and return the future of its result (see :meth:`submit`).

        Refusals (``QueueFull`` and its ``DeadlineUnreachable``, ``DeadlineExceeded`` for a
        deadline no batch could meet, ``ModelNotReady``, ``InvalidInput``) are raised here, at once.
        Cancelling the returned future drops the request like a cancelled :meth:`submit`.
        """
        policy = self._policy
        if items < 1:
            raise InvalidInput(f"items must be at least 1, got {items}")
        if cost < 0:
            raise InvalidInput(f"cost must be at least 0, got {cost}")
        if timeout_us is not None and timeout_us < 0:
            raise InvalidInput(f"timeout must be at least 0 microseconds, got {timeout_us}")
        level = policy.priorities.level_of(priority, model=self._name)
        if self._state != "running":
            self._observer.request_finished("rejected", items, 0.0, 0.0)
            raise ModelNotReady(f"model '{self._name}' is not serving (scheduler {self._state})")
        if not self._runner.available:
            self._observer.request_finished("rejected", items, 0.0, 0.0)
            raise ModelNotReady(f"model '{self._name}' is unavailable: {self._runner.reason}")
        if items > policy.max_queue_size:
            raise PayloadTooLarge(
                f"a request of {items} items can never fit the queue of model '{self._name}' "
                f"(max_queue_size {policy.max_queue_size})"
            )
        if self._pending_items + items > policy.max_queue_size:
            self._observer.request_finished("rejected", items, 0.0, 0.0)
            raise QueueFull(
                f"model '{self._name}': queue full ({self._pending_items} of "
                f"{policy.max_queue_size} items waiting)",
                retry_after_s=self._retry_after_s(),
            )
        queue_policy = policy.priorities.queue_policy(level)
        timeout = request_timeout_us(queue_policy, timeout_us, policy.default_timeout_us)
        soft = queue_policy is not None and queue_policy.timeout_action == "DELAY"
        if queue_policy is not None and queue_policy.max_queue_size:
            self._admit_level(level, items, queue_policy.max_queue_size)
        if timeout > 0 and not soft:
            self._admit_deadline(level, items, cost, timeout)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        request = _Request(
            next(self._seq), payload, items, cost, future, self._clock.now(),
            0 if soft else timeout, timings,
        )
        request.level = level
        self._queue[request.seq] = request
        self._live[request.seq] = request
        self._pending_items += items
        self._cost_ceiling = max(self._cost_ceiling, cost)
        self._observer.request_queued(items)
        if request.deadline is not None:
            request.timer = self._clock.call_at(request.deadline, functools.partial(self._expire, request))
        elif soft and timeout > 0:
            request.timer = self._clock.call_at(
                request.enqueued_at + timeout / 1_000_000, functools.partial(self._demote, request)
            )
        future.add_done_callback(functools.partial(self._on_future_done, request))
        self._wakeup.set()
        return future

    async def submit(
        self,
        payload: P,
        *,
        items: int = 1,
        cost: int = 1,
        timeout_us: int | None = None,
        timings: Timings | None = None,
        priority: int = 0,
    ) -> R:
        """Queue one request and wait for its result.

        ``items``: texts or rows it carries (a request of 16 texts counts 16; a request larger
        than ``max_batch_size`` runs as a batch of its own, never split). ``cost``: its longest
        item's token length estimate. ``timeout_us``: deadline from now; ``None`` takes the
        policy's default, 0 means none (its level's queue policy may override both, see
        :func:`~server.scheduler.priority.request_timeout_us`). ``timings``: filled with the
        request's stage durations (see :class:`~server.scheduler.timings.Timings`) before it is
        answered. ``priority``: 1 (the highest) .. ``priority_levels``; 0 the default level.

        Raises ``QueueFull`` (with ``retry_after_s``; ``DeadlineUnreachable`` when the work ahead
        cannot drain before its deadline), ``ModelNotReady`` (not running), ``DeadlineExceeded``
        (at the deadline, also while its batch computes; at once if no batch could meet it),
        ``InferenceFailed`` (its batch failed), ``InvalidInput`` (priority out of range).
        Cancelling the awaiting task drops the request before compute.
        """
        return await self.submit_nowait(
            payload, items=items, cost=cost, timeout_us=timeout_us, timings=timings,
            priority=priority,
        )

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Refuse new requests, run what is queued and running, then fail what is left.

        Queued requests are flushed into batches without waiting for the delay. After
        ``drain_timeout_s`` every request still unanswered gets ``ModelNotReady``; a batch still
        computing in its thread is then left to finish in the background, unanswered by it.
        """
        if self._state == "stopping":
            await self._stopped.wait()
            return
        if self._state != "running":
            self._state = "stopped"
            self._stopped.set()
            return
        self._state = "stopping"
        self._wakeup.set()
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            self._changed.set()

        timer = self._clock.call_at(self._clock.now() + drain_timeout_s, on_timeout)
        try:
            while (self._live or self._in_flight) and not timed_out:
                self._changed.clear()
                await self._changed.wait()
        finally:
            timer.cancel()
            self._shut_down(ModelNotReady(f"model '{self._name}' stopped before the request could run"))

    # -- forming batches -----------------------------------------------------------------------

    async def _form_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._form_batches()

    def _form_batches(self) -> None:
        policy = self._policy
        while self._queue and self._in_flight < policy.max_batches_in_flight:
            now = self._clock.now()
            delay_due = self._queue.oldest_enqueued_at() + policy.max_queue_delay_s
            idle = self._in_flight < policy.instance_count
            flushing = self._state == "stopping"
            delay_elapsed = now >= delay_due
            batch = None
            go_anyway = flushing or (idle and delay_elapsed)
            if may_be_ready(self._pending_items, self._cost_ceiling, policy, go_anyway=go_anyway):
                window = list(islice(self._queue.values(), window_size(policy)))
                selection = select(
                    window, policy, more_beyond=len(self._queue) > len(window), rank=rank
                )
                batch = ready_to_go(
                    selection, delay_elapsed=delay_elapsed, instance_idle=idle, flushing=flushing
                )
            if batch is None:
                if idle:
                    self._arm_delay_timer(delay_due)
                else:  # a finished batch will wake the former
                    self._disarm_delay_timer()
                return
            self._dispatch(batch, now)
        self._disarm_delay_timer()

    def _dispatch(self, batch: list[_Request[P, R]], now: float) -> None:
        taken = []
        for request in batch:
            if request.deadline is not None and now >= request.deadline:
                self._fail(request, "timeout", self._deadline_error(request))
            else:
                self._dequeue(request, now)
                taken.append(request)
        if not taken:
            return
        self._backlog.add(id(taken), self._admission.expected_compute_s(taken))
        self._in_flight += 1
        previous, turn = self._last_turn, asyncio.get_running_loop().create_future()
        self._last_turn = turn
        task = asyncio.create_task(self._run_batch(taken, previous, turn))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    def _arm_delay_timer(self, deadline: float) -> None:
        if self._delay_timer is not None and self._delay_deadline == deadline:
            return
        self._disarm_delay_timer()
        self._delay_deadline = deadline
        self._delay_timer = self._clock.call_at(deadline, self._on_delay_timer)

    def _disarm_delay_timer(self) -> None:
        if self._delay_timer is not None:
            self._delay_timer.cancel()
        self._delay_timer = None
        self._delay_deadline = None

    def _on_delay_timer(self) -> None:
        self._delay_timer = None
        self._delay_deadline = None
        self._wakeup.set()

    # -- running batches -----------------------------------------------------------------------

    async def _run_batch(
        self,
        batch: list[_Request[P, R]],
        previous_turn: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> None:
        requests = batch
        instance: int | None = None
        try:
            prepared, prepare_s = await self._in_thread(self._prepare_call(requests))
            if previous_turn is not None:
                await asyncio.shield(previous_turn)
            instance = await self._instances.get()
            turn.set_result(None)
            # Requests may have expired or been cancelled while the batch was prepared or
            # waited for an instance: they must not be computed, so prepare the rest again.
            while True:
                self._drop_dead(requests)
                alive = [r for r in requests if not r.finished]
                if not alive:
                    return
                if len(alive) == len(requests):
                    break
                requests = alive
                prepared, again_s = await self._in_thread(self._prepare_call(requests))
                prepare_s += again_s
            for request in requests:
                request.computing = True  # its deadline timer stays armed: it holds in compute
            self._backlog.start(id(batch), self._clock.now())
            taken, instance = instance, None  # the runner gives it back (or replaces it)
            results, compute_s = await self._runner.run(
                [r.payload for r in requests], prepared, taken,
                self._admission.expected_compute_s(requests),
            )
            if len(results) != len(requests):
                raise InferenceFailed(
                    f"the engine returned {len(results)} results for {len(requests)} requests"
                )
            items = sum(r.items for r in requests)
            self._admission.latency.observe(items, prepared.padded_tokens, prepare_s, compute_s)
            self._observer.batch_executed(
                len(requests),
                items,
                prepared.real_tokens,
                prepared.padded_tokens,
                prepare_s,
                compute_s,
            )
            for request, result in zip(requests, results, strict=True):
                timings = request.timings
                if timings is not None and not request.finished:  # answered: left alone
                    timings.prepare_s += prepare_s
                    timings.compute_s += compute_s
                    timings.batch_items = items
                self._succeed(request, result)
        except Exception as error:
            logger.warning("model %s: a batch of %d requests failed", self._name, len(batch), exc_info=True)
            message = str(error) if isinstance(error, SluiceError) else (f"{type(error).__name__}: {error}")
            failure = error if isinstance(error, EngineTimeout) else InferenceFailed(
                f"model '{self._name}': inference failed: {message}")
            for request in batch:
                self._fail(request, "failed", failure)
        finally:
            self._backlog.finish(id(batch))
            if not turn.done():
                turn.set_result(None)
            if instance is not None:
                self._instances.put_nowait(instance)
            self._in_flight -= 1
            self._wakeup.set()
            self._changed.set()

    def _prepare_call(self, requests: list[_Request[P, R]]) -> Callable[[], PreparedBatch]:
        return functools.partial(self._handler.prepare, [r.payload for r in requests])

    async def _in_thread(self, call: Callable[[], T]) -> tuple[T, float]:
        """Run ``call`` in a worker thread; return its result and its duration there."""

        def timed() -> tuple[T, float]:
            started = time.perf_counter()
            result = call()
            return result, time.perf_counter() - started

        return await asyncio.get_running_loop().run_in_executor(self._executor, timed)

    def _drop_dead(self, requests: list[_Request[P, R]]) -> None:
        """Answer the requests that expired or were cancelled (callback not yet run)."""
        now = self._clock.now()
        for request in requests:
            if request.future.cancelled():
                self._fail(request, "cancelled", asyncio.CancelledError())
            elif request.deadline is not None and now >= request.deadline:
                self._fail(request, "timeout", self._deadline_error(request))

    # -- admission (server.scheduler.admission) -----------------------------------------------

    def _retry_after_s(self, level: int | None = None) -> float:
        return self._admission.retry_after_s(self._queue, self._clock.now(), level)

    def _admit_level(self, level: int, items: int, limit: int) -> None:
        waiting = self._queue.items_at(level)
        if items > limit:
            raise PayloadTooLarge(f"a request of {items} items can never fit the queue of priority "
                                  f"level {level} of model '{self._name}' (max_queue_size {limit})")
        if waiting + items > limit:
            self._observer.request_finished("rejected", items, 0.0, 0.0)
            raise QueueFull(
                f"model '{self._name}': queue of priority level {level} full ({waiting} of "
                f"{limit} items waiting)",
                retry_after_s=self._retry_after_s(level),
            )

    def _admit_deadline(self, level: int, items: int, cost: int, timeout_us: int) -> None:
        try:
            self._admission.check(self._queue, self._clock.now(), level, items, cost, timeout_us)
        except SluiceError:
            self._observer.request_finished("rejected", items, 0.0, 0.0)
            raise

    # -- answering requests --------------------------------------------------------------------

    def _succeed(self, request: _Request[P, R], result: R) -> None:
        if self._close(request):
            if not request.future.done():
                request.future.set_result(result)
            self._report(request, "success")

    def _fail(self, request: _Request[P, R], outcome: str, error: BaseException) -> None:
        if self._close(request):
            if not request.future.done():
                request.future.set_exception(error)
            self._report(request, outcome)

    def _close(self, request: _Request[P, R]) -> bool:
        """Take ``request`` out of every structure; False if it was already answered."""
        if request.finished:
            return False
        request.finished = True
        if request.timer is not None:
            request.timer.cancel()
            request.timer = None
        if request.queued:
            self._dequeue(request, self._clock.now())
        del self._live[request.seq]
        self._changed.set()
        return True

    def _report(self, request: _Request[P, R], outcome: str) -> None:
        now = self._clock.now()
        left_queue = request.dequeued_at if request.dequeued_at is not None else now
        if request.timings is not None:
            request.timings.queue_s += left_queue - request.enqueued_at
        self._observer.request_finished(
            outcome, request.items, left_queue - request.enqueued_at, now - request.enqueued_at
        )

    def _dequeue(self, request: _Request[P, R], now: float) -> None:
        del self._queue[request.seq]
        request.queued = False
        request.dequeued_at = now
        self._pending_items -= request.items
        if not self._queue:
            self._cost_ceiling = 0
        self._observer.request_dequeued(request.items)

    def _expire(self, request: _Request[P, R]) -> None:
        """The deadline timer: it holds while the batch computes (the late result is dropped)."""
        self._fail(request, "timeout", self._deadline_error(request))

    def _demote(self, request: _Request[P, R]) -> None:
        """The soft deadline (``DELAY``) of a request: behind its level's others, if still queued."""
        request.timer = None
        if request.queued:
            self._queue.demote(request)

    def _deadline_error(self, request: _Request[P, R]) -> DeadlineExceeded:
        where = "while its batch was computing" if request.computing else "before it could run"
        return DeadlineExceeded(
            f"model '{self._name}': the request's deadline ({request.timeout_us} us) passed {where}"
        )

    def _on_future_done(self, request: _Request[P, R], future: asyncio.Future[R]) -> None:
        if future.cancelled():
            self._fail(request, "cancelled", asyncio.CancelledError())

    def _on_health(self, available: bool, reason: str) -> None:
        """The runner's health changed: when UNAVAILABLE, answer what is not computing."""
        if available:
            self._wakeup.set()
            return
        error = ModelNotReady(f"model '{self._name}' is unavailable: {reason}")
        for request in list(self._live.values()):
            if not request.computing:
                self._fail(request, "failed", error)

    # -- shutting down -------------------------------------------------------------------------

    def _shut_down(self, error: SluiceError) -> None:
        self._state = "stopped"
        self._runner.close()
        self._disarm_delay_timer()
        for request in list(self._live.values()):
            self._fail(request, "failed", error)
        if self._former is not None:
            self._former.cancel()
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()

    def _on_former_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        logger.error("model %s: the batch former crashed", self._name, exc_info=task.exception())
        self._shut_down(InferenceFailed(f"model '{self._name}': the scheduler failed"))
