"""The queue of one model version: requests waiting for a batch, and the counts read about it.

The requests are kept in batch order by a :class:`~server.scheduler.priority.LevelQueue`
(priority level, then not delayed before delayed, then arrival). :class:`RequestQueue` adds what
forming and admission read (items waiting, a bound of the queued costs) and reports arrivals
and departures to the observer. Taking a request out (:meth:`RequestQueue.take`) is the one way
out of the queue: into a batch, or out through an answer (deadline, cancellation, failure).
"""

from __future__ import annotations

from itertools import islice
from typing import Generic, Protocol, TypeVar

from server.scheduler.observer import BatchObserver
from server.scheduler.priority import LevelQueue, Ranked


class Queueable(Ranked, Protocol):
    """What the queue needs to know about a request, and marks on it when it leaves."""

    queued: bool
    dequeued_at: float | None


Q = TypeVar("Q", bound=Queueable)


class RequestQueue(Generic[Q]):
    """Queued requests in batch order, with their items and a bound of their costs."""

    def __init__(self, levels: int, observer: BatchObserver) -> None:
        self._queue: LevelQueue[Q] = LevelQueue(levels)
        self._observer = observer
        self._pending_items = 0
        self._cost_ceiling = 0  # >= every queued cost; reset when the queue empties

    def __len__(self) -> int:
        return len(self._queue)

    def __bool__(self) -> bool:
        return bool(self._queue)

    @property
    def pending_items(self) -> int:
        """Items waiting (not yet in a batch)."""
        return self._pending_items

    @property
    def cost_ceiling(self) -> int:
        """At least every queued cost (0 when empty); cheap to keep, unlike the maximum."""
        return self._cost_ceiling

    def put(self, request: Q) -> None:
        self._queue[request.seq] = request
        self._pending_items += request.items
        self._cost_ceiling = max(self._cost_ceiling, request.cost)
        self._observer.request_queued(request.items)

    def take(self, request: Q, now: float) -> None:
        """Take a queued ``request`` out (``now``: when it left the queue)."""
        del self._queue[request.seq]
        request.queued = False
        request.dequeued_at = now
        self._pending_items -= request.items
        if not self._queue:
            self._cost_ceiling = 0
        self._observer.request_dequeued(request.items)

    def demote(self, request: Q) -> None:
        """Move a queued request behind its level's requests not delayed (its soft deadline)."""
        self._queue.demote(request)

    def window(self, size: int) -> list[Q]:
        """The first ``size`` requests in batch order."""
        return list(islice(self._queue.values(), size))

    def oldest_enqueued_at(self) -> float:
        """The earliest arrival among the queued requests (the queue is not empty)."""
        return self._queue.oldest_enqueued_at()

    def items_at(self, level: int) -> int:
        return self._queue.items_at(level)

    def ahead_of(self, level: int) -> tuple[int, int]:
        """(items, items x cost) queued at ``level`` and above: what runs before a new request."""
        return self._queue.ahead_of(level)
