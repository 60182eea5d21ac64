"""Forecasts for admission: when will a new request be answered, behind the work ahead of it?

A request is answered after the work ahead of it: the batches already out of the queue (the
backlog, its remaining compute), and the items queued at its priority level or above (lower
levels wait behind it). The :class:`~server.scheduler.latency.LatencyModel` says how long that
takes:

- The queue ahead plus the request itself are cut into batches of ``max_batch_size`` items (fewer
  when ``max_batch_tokens`` binds at the queue's mean tokens per item). Batches follow each other
  every ``max(compute / instance_count, prepare)`` seconds (one is prepared while the instances
  compute); the request's own batch, the last, takes its full prepare + compute.
- The backlog's remaining compute is shared by the instances.
- A request that would form a partial batch on its own waits out what is left of
  ``max_queue_delay_us`` first.

:func:`check_deadline` refuses at once a request that would finish late: ``DeadlineExceeded``
when even an idle model could not compute its batch in time (retrying cannot help), else
``DeadlineUnreachable`` (429) with ``Retry-After`` the time to drain the work ahead of it.
With no estimate yet (nothing measured), every request is admitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.errors import DeadlineExceeded, DeadlineUnreachable
from server.scheduler.latency import LatencyModel
from server.scheduler.policy import BatchPolicy

#: Retry-After is kept within these bounds (seconds).
RETRY_AFTER_BOUNDS_S = (0.01, 60.0)
#: Retry-After while the latency model knows nothing.
UNKNOWN_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class Forecast:
    drain_s: float
    """Until the work ahead of the request is done (its Retry-After when refused)."""
    finish_s: float
    """Until the request itself is computed."""
    alone_s: float
    """Its own batch on an idle model (prepare + compute)."""


def batch_items(policy: BatchPolicy, tokens_per_item: float) -> int:
    """Items in a full batch at ``tokens_per_item``."""
    size = policy.max_batch_size
    if policy.max_batch_tokens is not None and tokens_per_item > 0:
        size = min(size, max(1, int(policy.max_batch_tokens // math.ceil(tokens_per_item))))
    return size


def drain_s(
    latency: LatencyModel, policy: BatchPolicy, items: int, tokens: int, backlog_s: float
) -> float | None:
    """Seconds to compute ``items`` queued items (``tokens``: items x cost, summed) after the backlog."""
    if items <= 0:
        return backlog_s / policy.instance_count
    per_item = tokens / items
    full = batch_items(policy, per_item)
    estimate = latency.estimate(full, round(full * per_item))
    if estimate is None:
        return None
    period = max(estimate.compute_s / policy.instance_count, estimate.prepare_s)
    return backlog_s / policy.instance_count + items / full * period


def forecast(
    latency: LatencyModel,
    policy: BatchPolicy,
    *,
    ahead_items: int,
    ahead_tokens: int,
    items: int,
    tokens: int,
    backlog_s: float,
    delay_left_s: float,
) -> Forecast | None:
    """When a new request of ``items`` (``tokens``: items x cost) would be answered, or None."""
    alone = latency.estimate(items, tokens)
    ahead = drain_s(latency, policy, ahead_items, ahead_tokens, backlog_s)
    if alone is None or ahead is None:
        return None
    total = ahead_items + items
    full = batch_items(policy, (ahead_tokens + tokens) / total)
    batches = max(1, math.ceil(total / full))
    last = total - (batches - 1) * full
    per_item = (ahead_tokens + tokens) / total
    last_estimate = latency.estimate(last, round(last * per_item))
    full_estimate = latency.estimate(full, round(full * per_item))
    if last_estimate is None or full_estimate is None:
        return None
    period = max(full_estimate.compute_s / policy.instance_count, full_estimate.prepare_s)
    start = backlog_s / policy.instance_count + (batches - 1) * period
    if batches == 1 and last < full:
        start = max(start, delay_left_s)
    return Forecast(drain_s=ahead, finish_s=start + last_estimate.total_s, alone_s=alone.total_s)


def retry_after_s(drain: float | None) -> float:
    """A Retry-After value (seconds) from a drain estimate (``None``: unknown)."""
    if drain is None:
        return UNKNOWN_RETRY_AFTER_S
    low, high = RETRY_AFTER_BOUNDS_S
    return min(high, max(low, drain))


def check_deadline(expected: Forecast | None, timeout_us: int, model: str) -> None:
    """Raise if a request with ``timeout_us`` (> 0) would be answered after its deadline."""
    if expected is None:
        return
    timeout_s = timeout_us / 1_000_000
    if expected.alone_s > timeout_s:
        raise DeadlineExceeded(
            f"model '{model}': the request's deadline ({timeout_us} us) is shorter than its "
            f"batch takes on an idle model (about {expected.alone_s * 1e6:.0f} us)"
        )
    if expected.finish_s > timeout_s:
        raise DeadlineUnreachable(
            f"model '{model}': the request's deadline ({timeout_us} us) cannot be met: the "
            f"work queued ahead of it needs about {expected.drain_s * 1e3:.0f} ms "
            f"(finish expected after {expected.finish_s * 1e3:.0f} ms)",
            retry_after_s=retry_after_s(expected.drain_s),
        )
