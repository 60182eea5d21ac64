"""What the scheduler measured for one request, carried back to whoever submitted it.

The submitter creates a :class:`Timings` (one small object per request) and passes it to
``Batcher.submit``; the batcher writes into it on the event loop as the request moves through
(when it leaves the queue, and when its batch has executed), before the request's future is
resolved, so the awaiting caller reads complete figures. A request submitted more than once
(the response cache recomputing a text whose first asker went away) adds its durations up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(call: Callable[[], T]) -> Callable[[], tuple[T, float]]:
    """``call`` made to return its result and how many seconds it took (for worker threads)."""

    def run() -> tuple[T, float]:
        started = time.perf_counter()
        result = call()
        return result, time.perf_counter() - started

    return run


class Timings:
    """Stage durations of one request, in seconds; zero for a stage it never reached."""

    __slots__ = ("batch_items", "compute_s", "prepare_s", "queue_s", "version")

    def __init__(self) -> None:
        self.queue_s = 0.0
        """From acceptance until the request left the queue (into a batch, or out through a
        deadline or cancellation)."""
        self.prepare_s = 0.0
        """Worker-thread time of its batch's input preparation (tokenization)."""
        self.compute_s = 0.0
        """Worker-thread time of its batch's execution in the engine."""
        self.batch_items = 0
        """Items of the batch it ran in (0: it never ran, e.g. answered from the cache)."""
        self.version = 0
        """The model version that served it (set by the service, not the batcher; 0: none)."""
