"""The former: the one task that forms a model version's batches, woken by events, never polling.

It is woken by a new request, a finished batch, the delay timer, a recovered model, or stop.
It forms batches while fewer than ``max_batches_in_flight`` (``instance_count + 1``) are out of
the queue, so one batch is prepared (tokenized) while the instances execute, and everything else
stays queued where it can still be grouped, time out or be cancelled. Which requests go and when
is decided by the pure functions of :mod:`server.scheduler.forming`; when none may go yet and an
instance is idle, the delay timer is armed for the oldest request's ``max_queue_delay_us``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from server.scheduler.clock import Clock, TimerHandle
from server.scheduler.forming import may_be_ready, ready_to_go, select, window_size
from server.scheduler.policy import BatchPolicy
from server.scheduler.priority import rank
from server.scheduler.queue import Queueable, RequestQueue

Q = TypeVar("Q", bound=Queueable)
Q_contra = TypeVar("Q_contra", bound=Queueable, contravariant=True)


class Dispatcher(Protocol[Q_contra]):
    """Where formed batches go (:class:`~server.scheduler.batch.Batches`)."""

    @property
    def in_flight(self) -> int: ...

    def dispatch(self, batch: Sequence[Q_contra], now: float) -> None: ...


class Former(Generic[Q]):
    """Forms batches out of ``queue`` into ``batches`` whenever woken (see the module docstring)."""

    def __init__(
        self,
        queue: RequestQueue[Q],
        batches: Dispatcher[Q],
        policy: BatchPolicy,
        *,
        clock: Clock,
        flushing: Callable[[], bool],
    ) -> None:
        """``flushing()``: the batcher is stopping, so every batch goes without waiting."""
        self._queue = queue
        self._batches = batches
        self._policy = policy
        self._clock = clock
        self._flushing = flushing
        self._wakeup = asyncio.Event()  # there is something to look at
        self._delay_timer: TimerHandle | None = None
        self._delay_deadline: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str, on_crash: Callable[[BaseException], None]) -> None:
        """Start the former's task (``name``); ``on_crash(error)`` if it ever raises."""
        self._task = asyncio.create_task(self._run(), name=name)
        self._task.add_done_callback(functools.partial(self._on_done, on_crash))

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        """Cancel the task and the delay timer."""
        self._disarm()
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._form()

    @staticmethod
    def _on_done(on_crash: Callable[[BaseException], None], task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            on_crash(error)

    def _form(self) -> None:
        """Dispatch every batch that should go now; else arm the delay timer if it can help."""
        policy, queue = self._policy, self._queue
        while queue and self._batches.in_flight < policy.max_batches_in_flight:
            now = self._clock.now()
            delay_due = queue.oldest_enqueued_at() + policy.max_queue_delay_s
            idle = self._batches.in_flight < policy.instance_count
            flushing = self._flushing()
            delay_elapsed = now >= delay_due
            batch = None
            go_anyway = flushing or (idle and delay_elapsed)
            if may_be_ready(queue.pending_items, queue.cost_ceiling, policy, go_anyway=go_anyway):
                window = queue.window(window_size(policy))
                selection = select(window, policy, more_beyond=len(queue) > len(window), rank=rank)
                batch = ready_to_go(
                    selection, delay_elapsed=delay_elapsed, instance_idle=idle, flushing=flushing
                )
            if batch is None:
                if idle:
                    self._arm_delay_timer(delay_due)
                else:  # a finished batch will wake the former
                    self._disarm()
                return
            self._batches.dispatch(batch, now)
        self._disarm()

    def _disarm(self) -> None:
        """Cancel the delay timer (the batcher stops, or no batch waits for it)."""
        if self._delay_timer is not None:
            self._delay_timer.cancel()
        self._delay_timer = None
        self._delay_deadline = None

    def _arm_delay_timer(self, deadline: float) -> None:
        if self._delay_timer is not None and self._delay_deadline == deadline:
            return
        self._disarm()
        self._delay_deadline = deadline
        self._delay_timer = self._clock.call_at(deadline, self._on_delay_timer)

    def _on_delay_timer(self) -> None:
        self._delay_timer = None
        self._delay_deadline = None
        self._wakeup.set()
