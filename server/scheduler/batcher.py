"""The dynamic micro-batcher of one model version: its public surface, ties the parts below.

All on the event loop except the two worker-thread calls::

    submit -> admission -> queue -> former -> [prepare in a thread] -> free instance
                                                -> [execute in a thread] -> futures resolved

:mod:`~server.scheduler.admission` refuses at once; :mod:`~server.scheduler.ticket` answers
every accepted request exactly once (deadline, cancellation); :mod:`~server.scheduler.queue`
keeps priority order; :mod:`~server.scheduler.former` forms batches as
:mod:`~server.scheduler.forming` decides; :mod:`~server.scheduler.batch` runs each one, a
failing batch failing only its own requests; :mod:`~server.scheduler.runner` owns the instances,
their order, the watchdog (:mod:`~server.scheduler.stuck`) and OOM halving.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from server.errors import InferenceFailed, ModelNotReady, SluiceError
from server.scheduler.admission import Admission
from server.scheduler.batch import Batches
from server.scheduler.clock import Clock, MonotonicClock, wait_until
from server.scheduler.former import Former
from server.scheduler.handler import BatchHandler
from server.scheduler.latency import LatencyModel, MeasuredLatency
from server.scheduler.observer import BatchObserver, NullObserver
from server.scheduler.policy import BatchPolicy
from server.scheduler.queue import RequestQueue
from server.scheduler.runner import EngineRunner
from server.scheduler.ticket import Ticket, Tickets
from server.scheduler.timings import Timings
from server.scheduler.watchdog import WatchdogLimits

__all__ = ["Batcher"]

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")

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
        self._policy = policy
        self._name = name or "model"
        self._clock: Clock = clock or MonotonicClock()
        self._observer: BatchObserver = observer or NullObserver()
        self._executor = executor
        self._owns_executor = executor is None
        self._state: _State = "new"
        self._changed = asyncio.Event()  # a request was answered or a batch finished
        self._stopped = asyncio.Event()
        self._admission = Admission(policy, latency or MeasuredLatency(), self._name, self._observer)
        self._queue: RequestQueue[Ticket[P, R]] = RequestQueue(policy.priorities.count, self._observer)
        self._tickets: Tickets[P, R] = Tickets(
            self._queue, clock=self._clock, observer=self._observer, name=self._name,
            on_answered=self._changed.set,
        )
        self._runner: EngineRunner[P, R] = EngineRunner(
            handler, policy.instance_count, clock=self._clock, executor=lambda: self._executor,
            limits=watchdog, replace=replace_instance, on_health=self._on_health, name=self._name,
        )
        self._batches: Batches[P, R] = Batches(
            handler, self._queue, self._tickets, self._runner, self._admission, clock=self._clock,
            observer=self._observer, executor=lambda: self._executor, name=self._name,
            on_finished=self._on_batch_finished,
        )
        self._former: Former[Ticket[P, R]] = Former(
            self._queue, self._batches, policy, clock=self._clock,
            flushing=lambda: self._state == "stopping",
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
        return self._queue.pending_items

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
        return self._batches.in_flight

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
        self._former.start(f"batcher-{self._name}", self._on_former_crash)
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
        refusal = None
        if self._state != "running":
            refusal = f"model '{self._name}' is not serving (scheduler {self._state})"
        elif not self._runner.available:
            refusal = f"model '{self._name}' is unavailable: {self._runner.reason}"
        terms = self._admission.admit(
            self._queue, self._clock.now(), items=items, cost=cost, timeout_us=timeout_us,
            priority=priority, refusal=refusal,
        )
        future = self._tickets.issue(payload, items=items, cost=cost, terms=terms, timings=timings)
        self._former.wake()
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

        Raises at once the refusals of :mod:`~server.scheduler.admission` (``QueueFull`` with
        ``retry_after_s``, ``ModelNotReady``, ``DeadlineExceeded``, ``InvalidInput``); later
        ``DeadlineExceeded`` (at the deadline, also while its batch computes) or
        ``InferenceFailed`` (its batch failed). Cancelling the awaiting task drops the request
        before compute.
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
        self._former.wake()
        try:
            await wait_until(self._clock, self._changed,
                             lambda: not (self._tickets or self._batches.in_flight), drain_timeout_s)
        finally:
            self._shut_down(ModelNotReady(f"model '{self._name}' stopped before the request could run"))

    # -- events --------------------------------------------------------------------------------

    def _on_batch_finished(self) -> None:
        self._former.wake()
        self._changed.set()

    def _on_health(self, available: bool, reason: str) -> None:
        """The runner's health changed: when UNAVAILABLE, answer what is not computing."""
        if available:
            self._former.wake()
            return
        error = ModelNotReady(f"model '{self._name}' is unavailable: {reason}")
        self._tickets.fail_all(error, computing_too=False)

    def _shut_down(self, error: SluiceError) -> None:
        self._state = "stopped"
        self._runner.close()
        self._tickets.fail_all(error)
        self._former.stop()
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()

    def _on_former_crash(self, error: BaseException) -> None:
        logger.error("model %s: the batch former crashed", self._name, exc_info=error)
        self._shut_down(InferenceFailed(f"model '{self._name}': the scheduler failed"))
