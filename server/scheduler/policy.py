"""The batching policy of one model version: frozen, validated once, read on every batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.scheduler.priority import Priorities, QueuePolicy

if TYPE_CHECKING:
    from server.repository.config import BatchingConfig, QueuePolicyConfig


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch closes and how much may wait.

    A batch closes at ``max_batch_size`` items, when its padded size (items x the largest item
    cost in it) would pass ``max_batch_tokens``, when it reaches one of
    ``preferred_batch_sizes``, or once its oldest request has waited ``max_queue_delay_us``.
    """

    max_batch_size: int = 32
    max_queue_delay_us: int = 2000
    preferred_batch_sizes: tuple[int, ...] = ()
    max_batch_tokens: int | None = None
    """Cap on a batch's padded size: items x the largest item cost. ``None``: no cap."""
    max_queue_size: int = 1024
    """Most items waiting in the queue; more are rejected at once."""
    default_timeout_us: int = 0
    """Deadline of requests that set none; 0 means no deadline."""
    instance_count: int = 1
    length_aware: bool = True
    """Group requests of similar cost in a batch (see ``server.scheduler.forming``)."""
    priorities: Priorities = field(default_factory=Priorities)
    """Priority levels and their queue policies (``server.scheduler.priority``)."""

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_queue_delay_us < 0:
            raise ValueError(f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}")
        for size in self.preferred_batch_sizes:
            if not 1 <= size <= self.max_batch_size:
                raise ValueError(
                    f"preferred_batch_sizes entry {size} must be within 1..max_batch_size "
                    f"({self.max_batch_size})"
                )
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, got {self.max_batch_tokens}")
        if self.max_queue_size < 1:
            raise ValueError(f"max_queue_size must be at least 1, got {self.max_queue_size}")
        if self.default_timeout_us < 0:
            raise ValueError(f"default_timeout_us must be >= 0, got {self.default_timeout_us}")
        if self.instance_count < 1:
            raise ValueError(f"instance_count must be at least 1, got {self.instance_count}")
        # Kept sorted and unique so that callers can compare policies and read them plainly.
        object.__setattr__(self, "preferred_batch_sizes", tuple(sorted(set(self.preferred_batch_sizes))))

    @property
    def max_queue_delay_s(self) -> float:
        return self.max_queue_delay_us / 1_000_000

    @property
    def max_batches_in_flight(self) -> int:
        """Batches out of the queue at once: one per instance plus one being prepared ahead."""
        return self.instance_count + 1

    @classmethod
    def from_config(cls, batching: BatchingConfig, instance_count: int) -> BatchPolicy:
        """The policy of a model's ``batching:`` section and ``engine.instance_count``."""
        return cls(
            max_batch_size=batching.max_batch_size,
            max_queue_delay_us=batching.max_queue_delay_us,
            preferred_batch_sizes=tuple(batching.preferred_batch_sizes),
            max_batch_tokens=batching.max_batch_tokens,
            max_queue_size=batching.max_queue_size,
            default_timeout_us=batching.default_timeout_us,
            instance_count=instance_count,
            priorities=_priorities(batching),
        )


def _queue_policy(config: QueuePolicyConfig) -> QueuePolicy:
    return QueuePolicy(
        max_queue_size=config.max_queue_size,
        default_timeout_us=config.default_timeout_microseconds,
        allow_timeout_override=config.allow_timeout_override,
        timeout_action=config.timeout_action,
    )


def _priorities(batching: BatchingConfig) -> Priorities:
    default = batching.default_queue_policy
    return Priorities(
        levels=batching.priority_levels,
        default_level=batching.default_priority_level,
        default_queue_policy=None if default is None else _queue_policy(default),
        queue_policies={
            level: _queue_policy(p) for level, p in batching.priority_queue_policy.items()
        },
    )
