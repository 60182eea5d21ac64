"""Dynamic micro-batching: one :class:`Batcher` per loaded model version.

``Batcher`` queues requests, forms batches by size, token budget, preferred sizes and delay
(grouping requests of similar length), runs them on the model's engine instances in worker
threads, and answers every request exactly once.
"""

from server.scheduler.batcher import Batcher
from server.scheduler.clock import Clock, FakeClock, MonotonicClock, TimerHandle
from server.scheduler.handler import BatchHandler, PreparedBatch
from server.scheduler.observer import OUTCOMES, BatchObserver, NullObserver
from server.scheduler.policy import BatchPolicy
from server.scheduler.timings import Timings

__all__ = [
    "OUTCOMES",
    "BatchHandler",
    "BatchObserver",
    "BatchPolicy",
    "Batcher",
    "Clock",
    "FakeClock",
    "MonotonicClock",
    "NullObserver",
    "PreparedBatch",
    "TimerHandle",
    "Timings",
]
