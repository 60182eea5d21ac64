"""The watchdog's limits: how long one engine call may run, how many may be abandoned.

A call's limit is ``engine_call_timeout_s`` when set, else derived from the one latency model
(:mod:`server.scheduler.latency`): ``max(DERIVED_FLOOR_S, DERIVED_FACTOR x expected compute)``,
or ``UNKNOWN_LIMIT_S`` while nothing is measured yet. A call past its limit is abandoned by
:class:`~server.scheduler.runner.EngineRunner` (an ONNX Runtime call in a thread cannot be
cancelled); :class:`~server.scheduler.stuck.StuckCalls` counts those stuck calls against
``max_stuck_calls``. Replacing an instance after repeated timeouts waits
:meth:`WatchdogLimits.backoff_s`, doubling up to ``backoff_max_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A derived limit is never shorter than this (seconds). Generous on purpose: the latency model
#: knows a batch's shape, not what its content costs (a model whose compute depends on the
#: input, a busy host), and a batch killed for being legitimately slow is a lost answer.
DERIVED_FLOOR_S = 30.0
#: A derived limit is this many times the expected compute of the batch.
DERIVED_FACTOR = 10.0
#: The limit while the latency model knows nothing (seconds).
UNKNOWN_LIMIT_S = 60.0


@dataclass(frozen=True)
class WatchdogLimits:
    """Per model version; built from the server settings."""

    call_timeout_s: float = 0.0
    """The limit of one engine call; 0 derives it from the expected compute."""
    max_stuck_calls: int = 2
    """Abandoned calls (still running in their threads) at which the model goes UNAVAILABLE."""
    backoff_base_s: float = 0.5
    """Delay before replacing an instance after the second consecutive failure; doubles."""
    backoff_max_s: float = 30.0
    """The longest such delay."""

    def __post_init__(self) -> None:
        if self.call_timeout_s < 0:
            raise ValueError(f"call_timeout_s must be >= 0, got {self.call_timeout_s}")
        if self.max_stuck_calls < 1:
            raise ValueError(f"max_stuck_calls must be >= 1, got {self.max_stuck_calls}")

    def limit_s(self, expected_compute_s: float) -> float:
        """The limit of a call expected to take ``expected_compute_s`` (0: unknown)."""
        if self.call_timeout_s > 0:
            return self.call_timeout_s
        if expected_compute_s <= 0:
            return UNKNOWN_LIMIT_S
        return max(DERIVED_FLOOR_S, DERIVED_FACTOR * expected_compute_s)

    def backoff_s(self, consecutive_failures: int) -> float:
        """Delay before the next replacement: none for the first failure, then doubling."""
        if consecutive_failures <= 1:
            return 0.0
        return min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (consecutive_failures - 2))
