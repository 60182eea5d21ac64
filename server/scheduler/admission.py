"""Admission: the door of one model version's queue. A request is refused at once, or queued.

:meth:`Admission.admit` checks, in this order, and raises the first refusal:

- its arguments (``InvalidInput``: items, cost, timeout, a priority out of range);
- that the model serves (``ModelNotReady``: not running, or UNAVAILABLE);
- the queue's bounds, the model's ``max_queue_size`` and its priority level's own
  (``QueueFull``, 429 with ``Retry-After`` the time to drain it; ``PayloadTooLarge`` for a
  request that could never fit);
- its deadline (:mod:`server.scheduler.forecast`: ``DeadlineUnreachable`` when the work ahead
  cannot drain in time, ``DeadlineExceeded`` when no batch could meet it).

Every refusal except a bad argument is reported ``rejected`` to the observer. An admitted
request gets its :class:`Terms`: its priority level and its timeout (from its level's queue
policy). The :class:`Backlog` is the expected compute of the batches out of the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from server.errors import InvalidInput, ModelNotReady, PayloadTooLarge, QueueFull, SluiceError
from server.scheduler.forecast import check_deadline, drain_s, forecast, retry_after_s
from server.scheduler.forming import Queued
from server.scheduler.latency import LatencyModel
from server.scheduler.observer import BatchObserver
from server.scheduler.policy import BatchPolicy
from server.scheduler.priority import request_timeout_us


class QueueView(Protocol):
    """What admission reads of the queue (a :class:`~server.scheduler.queue.RequestQueue`)."""

    def __bool__(self) -> bool: ...

    @property
    def pending_items(self) -> int: ...

    def items_at(self, level: int) -> int: ...

    def ahead_of(self, level: int) -> tuple[int, int]: ...

    def oldest_enqueued_at(self) -> float: ...


@dataclass(frozen=True)
class Terms:
    """What an admitted request is queued with."""

    level: int
    """Its priority level, 1 the highest."""
    timeout_us: int
    """Its timeout (0: none)."""
    soft: bool
    """Its level's queue policy says ``DELAY``: at the timeout it moves behind, not out."""


class Backlog:
    """Expected compute seconds of the batches out of the queue and not finished."""

    def __init__(self) -> None:
        self._batches: dict[int, tuple[float, float | None]] = {}  # key -> (expected, started)

    def add(self, key: int, expected_s: float) -> None:
        self._batches[key] = (expected_s, None)

    def start(self, key: int, now: float) -> None:
        if key in self._batches:
            self._batches[key] = (self._batches[key][0], now)

    def finish(self, key: int) -> None:
        self._batches.pop(key, None)

    def remaining_s(self, now: float) -> float:
        """Compute still to do: each started batch's expectation less its elapsed time."""
        total = 0.0
        for expected, started in self._batches.values():
            total += expected if started is None else max(0.0, expected - (now - started))
        return total


class Admission:
    """What one batcher asks before queueing a request, and its backlog of batches."""

    def __init__(
        self, policy: BatchPolicy, latency: LatencyModel, name: str, observer: BatchObserver
    ) -> None:
        self.policy = policy
        self.latency = latency
        self.name = name
        self.backlog = Backlog()
        self._observer = observer

    def admit(
        self, queue: QueueView, now: float, *, items: int, cost: int, timeout_us: int | None,
        priority: int, refusal: str | None,
    ) -> Terms:
        """The terms of a new request, or its refusal raised (see the module docstring).

        ``refusal``: why the model does not serve now (``None``: it does).
        """
        policy = self.policy
        if items < 1:
            raise InvalidInput(f"items must be at least 1, got {items}")
        if cost < 0:
            raise InvalidInput(f"cost must be at least 0, got {cost}")
        if timeout_us is not None and timeout_us < 0:
            raise InvalidInput(f"timeout must be at least 0 microseconds, got {timeout_us}")
        level = policy.priorities.level_of(priority, model=self.name)
        queue_policy = policy.priorities.queue_policy(level)
        timeout = request_timeout_us(queue_policy, timeout_us, policy.default_timeout_us)
        soft = queue_policy is not None and queue_policy.timeout_action == "DELAY"
        try:
            if refusal is not None:
                raise ModelNotReady(refusal)
            self._check_room(queue, now, items, policy.max_queue_size)
            if queue_policy is not None and queue_policy.max_queue_size:
                self._check_room(queue, now, items, queue_policy.max_queue_size, level)
            if timeout > 0 and not soft:
                self._check_deadline(queue, now, level, items, cost, timeout)
        except InvalidInput:  # PayloadTooLarge: it could never fit
            raise
        except SluiceError:
            self._observer.request_finished("rejected", items, 0.0, 0.0)
            raise
        return Terms(level, timeout, soft)

    def retry_after_s(self, queue: QueueView, now: float, level: int | None = None) -> float:
        """Retry-After: the time to drain the queue (at ``level`` and above, if given)."""
        items, tokens = queue.ahead_of(self.policy.priorities.count if level is None else level)
        drain = drain_s(self.latency, self.policy, items, tokens, self.backlog.remaining_s(now))
        return retry_after_s(drain)

    def _check_room(
        self, queue: QueueView, now: float, items: int, limit: int, level: int | None = None
    ) -> None:
        """Raise unless ``items`` more fit within ``limit`` queued items: the model's queue, or
        (``level``) that priority level's. ``PayloadTooLarge`` if they never could."""
        where = "" if level is None else f"priority level {level} of "
        if items > limit:
            raise PayloadTooLarge(f"a request of {items} items can never fit the queue of {where}"
                                  f"model '{self.name}' (max_queue_size {limit})")
        waiting = queue.pending_items if level is None else queue.items_at(level)
        if waiting + items > limit:
            which = "queue" if level is None else f"queue of priority level {level}"
            raise QueueFull(
                f"model '{self.name}': {which} full ({waiting} of {limit} items waiting)",
                retry_after_s=self.retry_after_s(queue, now, level),
            )

    def _check_deadline(
        self, queue: QueueView, now: float, level: int, items: int, cost: int,
        timeout_us: int,
    ) -> None:
        """Raise if a request (``items`` of ``cost``) at ``level`` cannot meet ``timeout_us``."""
        ahead_items, ahead_tokens = queue.ahead_of(level)
        delay_left = self.policy.max_queue_delay_s
        if queue:
            delay_left = max(0.0, queue.oldest_enqueued_at() + delay_left - now)
        expected = forecast(
            self.latency, self.policy, ahead_items=ahead_items, ahead_tokens=ahead_tokens,
            items=items, tokens=items * cost, backlog_s=self.backlog.remaining_s(now),
            delay_left_s=delay_left,
        )
        check_deadline(expected, timeout_us, self.name)

    def expected_compute_s(self, batch: Sequence[Queued]) -> float:
        """A formed batch's expected compute (0 while unknown), padded to its largest cost."""
        items = sum(r.items for r in batch)
        estimate = self.latency.estimate(items, items * max(r.cost for r in batch))
        return 0.0 if estimate is None else estimate.compute_s
