"""Priority levels and their queue policies (Triton's ``priority_levels``), and the queue they order.

Numbering follows Triton: with ``levels`` N > 0 a request's priority is 1 (the highest) .. N;
0 (or none) means the model's ``default_level``. With N = 0 priorities are off: every request
shares one level and only priority 0 is accepted. Unlike Triton, which silently maps an
out-of-range priority to the default level, a priority outside 0..N is an ``InvalidInput``.

Each level has a :class:`QueuePolicy`: its own cap on waiting items, its default timeout,
whether a request may set its own, and what happens at a deadline (``REJECT``: answered
``DeadlineExceeded``; ``DELAY``: the request stays queued, behind its level's requests that
have not timed out, and is computed later).

:class:`LevelQueue` holds the queued requests in the order batches take them: by level, then
(within a level) requests not delayed before delayed ones, then arrival order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Generic, Literal, Protocol, TypeVar

from server.errors import InvalidInput

#: Most priority levels a model may declare.
MAX_PRIORITY_LEVELS: Final = 32

TimeoutAction = Literal["REJECT", "DELAY"]


@dataclass(frozen=True)
class QueuePolicy:
    """How one priority level queues (Triton's ``ModelQueuePolicy``)."""

    max_queue_size: int = 0
    """Most items waiting at this level; 0: only the model's ``max_queue_size`` bounds it."""
    default_timeout_us: int | None = None
    """Deadline of requests that set none; 0: none; ``None``: the model's ``default_timeout_us``."""
    allow_timeout_override: bool = True
    """A request's own timeout applies when it is shorter than the default (or the default is
    none), as in Triton; False: the default always applies. (Triton's default is False.)"""
    timeout_action: TimeoutAction = "REJECT"
    """``REJECT``: answered ``DeadlineExceeded`` at the deadline (even while computing).
    ``DELAY``: the deadline is soft; the request moves behind its level and runs later."""

    def __post_init__(self) -> None:
        if self.max_queue_size < 0:
            raise ValueError(f"max_queue_size must be >= 0, got {self.max_queue_size}")
        if self.default_timeout_us is not None and self.default_timeout_us < 0:
            raise ValueError(f"default_timeout_us must be >= 0, got {self.default_timeout_us}")
        if self.timeout_action not in ("REJECT", "DELAY"):
            raise ValueError(f"timeout_action must be REJECT or DELAY, got {self.timeout_action!r}")


def request_timeout_us(policy: QueuePolicy | None, requested: int | None, model_default: int) -> int:
    """The timeout a request gets (0: none).

    ``requested``: the request's own (``None``: it set none; 0: explicitly none). Without a
    queue policy, Sluice's rule: the request's own timeout replaces ``model_default``. With
    one, Triton's: the level's default, which a request may only shorten, if allowed.
    """
    if policy is None:
        return model_default if requested is None else requested
    default = model_default if policy.default_timeout_us is None else policy.default_timeout_us
    if requested is None or requested == 0 or not policy.allow_timeout_override:
        return default
    return requested if default == 0 else min(requested, default)


@dataclass(frozen=True)
class Priorities:
    """A model's priority levels, its default level and the queue policy of each level."""

    levels: int = 0
    """0: off (one level). N: levels 1 (highest) .. N."""
    default_level: int = 0
    """The level of requests with priority 0; within 1..N when N > 0, else 0."""
    default_queue_policy: QueuePolicy | None = None
    """The policy of levels without their own; ``None``: none (Sluice's timeout rule)."""
    queue_policies: Mapping[int, QueuePolicy] = field(default_factory=dict)
    """Per-level policies, keyed by level 1..N."""

    def __post_init__(self) -> None:
        if not 0 <= self.levels <= MAX_PRIORITY_LEVELS:
            raise ValueError(f"priority_levels must be within 0..{MAX_PRIORITY_LEVELS}, got {self.levels}")
        if self.levels == 0 and self.default_level != 0:
            raise ValueError("default_priority_level needs priority_levels > 0")
        if self.levels > 0 and not 1 <= self.default_level <= self.levels:
            raise ValueError(
                f"default_priority_level must be within 1..{self.levels} (priority_levels), "
                f"got {self.default_level}"
            )
        for level in self.queue_policies:
            if not 1 <= level <= self.levels:
                raise ValueError(
                    f"priority_queue_policy level {level} must be within 1..{self.levels} "
                    "(priority_levels)"
                )
        object.__setattr__(self, "queue_policies", dict(sorted(self.queue_policies.items())))

    def __hash__(self) -> int:
        return hash((self.levels, self.default_level, self.default_queue_policy,
                     tuple(self.queue_policies.items())))

    @property
    def count(self) -> int:
        """Levels the queue keeps (one when priorities are off)."""
        return max(1, self.levels)

    def level_of(self, priority: int | None, field_name: str = "priority", model: str = "") -> int:
        """The level (1..count) of a request's ``priority``; ``InvalidInput`` out of range."""
        if priority is None or priority == 0:
            return self.default_level or 1
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 < priority <= self.levels:
            whose = f"model '{model}'" if model else "the model"
            meaning = (
                f"{whose} has priority_levels 0: priorities are off" if self.levels == 0
                else f"{whose} has priority_levels {self.levels}: 1 is the highest, 0 means "
                f"the default level {self.default_level}"
            )
            raise InvalidInput(f"{field_name}: must be an integer within 0..{self.levels}, got "
                               f"{priority!r} ({meaning})")
        return priority

    def queue_policy(self, level: int) -> QueuePolicy | None:
        return self.queue_policies.get(level, self.default_queue_policy)


class Ranked(Protocol):
    """What the queue needs to know about a request."""

    seq: int
    items: int
    cost: int
    level: int
    delayed: bool
    enqueued_at: float


Q = TypeVar("Q", bound=Ranked)


def rank(request: Ranked) -> int:
    """Its place in batch order: lower goes first (level, then not delayed before delayed)."""
    return 2 * request.level + request.delayed


class LevelQueue(Generic[Q]):
    """Queued requests in batch order, with item and token counts per level.

    Used like the ``dict`` of seq -> request it replaces: ``queue[seq] = r``, ``del queue[seq]``,
    ``values()`` (batch order), ``len``, truth.
    """

    def __init__(self, levels: int) -> None:
        # bucket 2 * (level - 1) + delayed, each in insertion order
        self._buckets: list[dict[int, Q]] = [{} for _ in range(2 * levels)]
        self._bucket_of: dict[int, int] = {}
        self._items = [0] * (levels + 1)
        self._tokens = [0] * (levels + 1)

    def _bucket(self, request: Q) -> int:
        return rank(request) - 2

    def __setitem__(self, seq: int, request: Q) -> None:
        bucket = self._bucket(request)
        self._buckets[bucket][seq] = request
        self._bucket_of[seq] = bucket
        self._items[request.level] += request.items
        self._tokens[request.level] += request.items * request.cost

    def __delitem__(self, seq: int) -> None:
        request = self._buckets[self._bucket_of.pop(seq)].pop(seq)
        self._items[request.level] -= request.items
        self._tokens[request.level] -= request.items * request.cost

    def __len__(self) -> int:
        return len(self._bucket_of)

    def __bool__(self) -> bool:
        return bool(self._bucket_of)

    def values(self) -> Iterator[Q]:
        for bucket in self._buckets:
            yield from bucket.values()

    def demote(self, request: Q) -> None:
        """Move a queued request behind its level's requests that are not delayed (``DELAY``)."""
        if request.delayed or request.seq not in self._bucket_of:
            return
        del self[request.seq]
        request.delayed = True
        self[request.seq] = request

    def oldest_enqueued_at(self) -> float:
        """The earliest arrival among the requests first in each bucket (the queue is not empty)."""
        return min(next(iter(b.values())).enqueued_at for b in self._buckets if b)

    def items_at(self, level: int) -> int:
        return self._items[level]

    def ahead_of(self, level: int) -> tuple[int, int]:
        """(items, items x cost) queued at ``level`` and above: what runs before a new request."""
        return sum(self._items[1 : level + 1]), sum(self._tokens[1 : level + 1])
