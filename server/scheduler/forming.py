"""Which queued requests make the next batch, and whether it should go now.

Pure functions over the queue (oldest first); the former (:mod:`server.scheduler.former`) calls
them and owns the delay timer.

Selection
    The oldest request always goes first, so nothing starves: a request with ``k`` requests
    ahead of it waits at most ``k`` batches. The batch is then filled from the queue:

    - FIFO (``length_aware=False``): in arrival order, stopping at the first request that does
      not fit (Triton's behaviour: order is kept).
    - length-aware (default): among the first ``GROUPING_WINDOW_BATCHES`` batches' worth of
      queued requests, those whose cost (longest item, in tokens) is closest to the oldest
      request's cost come first; a request that does not fit is skipped, not a stop. Since a
      batch is padded to its longest item, grouping similar lengths cuts the padding (short
      tweets no longer pay for one long one) while the oldest-first anchor keeps it fair.

    "Fits" means the batch stays within ``max_batch_size`` items and within
    ``max_batch_tokens`` padded tokens (items x largest cost). A request that alone passes either
    limit is never split: it runs as a batch of its own.

Closing
    A batch goes now when it is full (a queued request was left out, or it holds
    ``max_batch_size`` items), when the batcher is flushing (stopping), or when its oldest
    request has waited ``max_queue_delay_us`` (at once when that is 0) and an engine instance is
    idle. Otherwise, if the selection reaches a preferred batch size, the longest selection prefix
    of a preferred size goes. While every instance is busy, a batch formed ahead is closed only
    when full or preferred: it could not run sooner anyway, and the queue is where requests can
    still be grouped, time out or be cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from server.scheduler.policy import BatchPolicy

#: How far past one batch the length-aware selection looks, in batches (Infinity uses 8).
GROUPING_WINDOW_BATCHES = 8


class Queued(Protocol):
    """What selection needs to know about a queued request."""

    @property
    def items(self) -> int: ...

    @property
    def cost(self) -> int: ...


Q = TypeVar("Q", bound=Queued)


@dataclass(frozen=True)
class Selection(Generic[Q]):
    """The requests the next batch would hold, in selection order."""

    chosen: list[Q]
    full: bool
    """True when the batch cannot grow: at ``max_batch_size``, or a queued request was left out."""
    preferred_count: int
    """How many of ``chosen`` (a prefix) add up to the largest preferred size reached; 0: none."""


def window_size(policy: BatchPolicy) -> int:
    """How many queued requests (oldest first) selection looks at."""
    return GROUPING_WINDOW_BATCHES * policy.max_batch_size


def padded_tokens(requests: Sequence[Queued]) -> int:
    """A batch's padded size: its items times its largest cost."""
    if not requests:
        return 0
    return sum(r.items for r in requests) * max(r.cost for r in requests)


def select(
    window: Sequence[Q],
    policy: BatchPolicy,
    *,
    more_beyond: bool = False,
    rank: Callable[[Q], int] | None = None,
) -> Selection[Q]:
    """Choose the next batch out of ``window`` (queued requests, oldest first, not empty).

    ``more_beyond`` says the queue holds requests past the window (which makes the batch full).
    ``rank`` (priorities): the window is in rank order, and length-aware grouping only reorders
    requests of the same rank, so a lower-priority request never takes a higher one's place.
    """
    anchor = window[0]
    chosen = [anchor]
    items, top_cost = anchor.items, anchor.cost
    preferred = set(policy.preferred_batch_sizes)
    preferred_count = 1 if items in preferred else 0
    if not _fits(items, top_cost, policy):
        return Selection(chosen, full=True, preferred_count=0)  # oversized: runs alone

    rest = list(window[1:])
    if policy.length_aware:
        # sorted() is stable, so equal distances keep arrival order.
        if rank is None:
            rest = sorted(rest, key=lambda r: abs(r.cost - anchor.cost))
        else:
            ranked = rank
            rest = sorted(rest, key=lambda r: (ranked(r), abs(r.cost - anchor.cost)))
    left_out = more_beyond
    for request in rest:
        if items >= policy.max_batch_size:
            left_out = True
            break
        new_items, new_cost = items + request.items, max(top_cost, request.cost)
        if not _fits(new_items, new_cost, policy):
            left_out = True
            if policy.length_aware:
                continue
            break
        chosen.append(request)
        items, top_cost = new_items, new_cost
        if items in preferred:
            preferred_count = len(chosen)
    full = left_out or items >= policy.max_batch_size
    return Selection(chosen, full=full, preferred_count=preferred_count)


def _fits(items: int, top_cost: int, policy: BatchPolicy) -> bool:
    if items > policy.max_batch_size:
        return False
    return policy.max_batch_tokens is None or items * top_cost <= policy.max_batch_tokens


def ready_to_go(
    selection: Selection[Q], *, delay_elapsed: bool, instance_idle: bool, flushing: bool
) -> list[Q] | None:
    """The requests to send now, or None to keep waiting (see the module docstring).

    ``delay_elapsed``: the oldest request has waited ``max_queue_delay_us``.
    """
    if selection.full or flushing:
        return selection.chosen
    if instance_idle and delay_elapsed:
        return selection.chosen
    if selection.preferred_count:
        return selection.chosen[: selection.preferred_count]
    return None


def may_be_ready(queued_items: int, cost_ceiling: int, policy: BatchPolicy, *, go_anyway: bool) -> bool:
    """A cheap necessary condition for :func:`ready_to_go`, checked before selecting.

    ``cost_ceiling`` is an upper bound of the queued costs. When this is False no selection
    can close, so the batcher waits without sorting the queue on every arrival. ``go_anyway``:
    flushing, or an idle instance and the oldest request's delay is over.
    """
    if go_anyway or queued_items >= policy.max_batch_size:
        return True
    if policy.preferred_batch_sizes and queued_items >= policy.preferred_batch_sizes[0]:
        return True
    return policy.max_batch_tokens is not None and (queued_items * cost_ceiling > policy.max_batch_tokens)
