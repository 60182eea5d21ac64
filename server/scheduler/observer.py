"""The metrics hook the batcher reports to (``server/metrics.py`` implements it)."""

from __future__ import annotations

from typing import Final, Protocol

#: The ``outcome`` values of :meth:`BatchObserver.request_finished`.
OUTCOMES: Final = ("success", "rejected", "timeout", "cancelled", "failed")


class BatchObserver(Protocol):
    """Called on the event loop's thread; must not block.

    Every request the batcher accepted is reported by exactly one ``request_finished``; a request
    refused at the door (queue full, model not serving) is reported once as ``"rejected"`` and was
    never queued. ``queue_s`` is the time from acceptance until the request left the queue
    (into a batch, or out through a deadline or cancellation); ``total_s`` runs until its answer.
    ``prepare_s`` and ``compute_s`` are worker-thread times of ``prepare`` and ``execute``.
    """

    def request_queued(self, items: int) -> None: ...

    def request_dequeued(self, items: int) -> None: ...

    def request_finished(self, outcome: str, items: int, queue_s: float, total_s: float) -> None: ...

    def batch_executed(
        self,
        requests: int,
        items: int,
        real_tokens: int,
        padded_tokens: int,
        prepare_s: float,
        compute_s: float,
    ) -> None: ...


class NullObserver:
    """The default: reports nowhere."""

    def request_queued(self, items: int) -> None:
        pass

    def request_dequeued(self, items: int) -> None:
        pass

    def request_finished(self, outcome: str, items: int, queue_s: float, total_s: float) -> None:
        pass

    def batch_executed(
        self,
        requests: int,
        items: int,
        real_tokens: int,
        padded_tokens: int,
        prepare_s: float,
        compute_s: float,
    ) -> None:
        pass
