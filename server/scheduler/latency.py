"""How long a batch takes: the one latency model the scheduler (and the watchdog) consult.

The interface is :class:`LatencyModel`, two methods:

- ``estimate(items, padded_tokens)``: the expected :class:`BatchEstimate` (seconds of input
  preparation and of engine compute) of one batch of ``items`` items padded to
  ``padded_tokens`` tokens in all (items x its longest item; 0 for tensor models), or ``None``
  while the model knows nothing yet (callers then do what they did without one).
- ``observe(items, padded_tokens, prepare_s, compute_s)``: what one batch actually took.

Both are called on the event loop's thread and must be cheap (microseconds). Admission
(:mod:`server.scheduler.admission`) turns estimates into queue-drain and finish times; the
engine watchdog derives its limit from ``compute_s``. A better model (a cost model of the
hardware) replaces :class:`MeasuredLatency` behind the same two methods.

:class:`MeasuredLatency` is the simple one: prepare and compute each a least-squares line
``a + b x`` over the batch size ``x`` (padded tokens, or items for models without tokens),
weighted towards recent batches; seeded from the timed warm-up batches at load
(``engines.warmup.timed_warmup``) and fed every executed batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BatchEstimate:
    """Expected seconds of one batch."""

    prepare_s: float
    """Input preparation (tokenization) in a worker thread; overlaps other batches' compute."""
    compute_s: float
    """The engine call(s) on one instance."""

    @property
    def total_s(self) -> float:
        return self.prepare_s + self.compute_s


class LatencyModel(Protocol):
    """Expected time of a batch of a given shape (see the module docstring)."""

    def estimate(self, items: int, padded_tokens: int) -> BatchEstimate | None: ...

    def observe(self, items: int, padded_tokens: int, prepare_s: float, compute_s: float) -> None: ...


class _Line:
    """Exponentially weighted least squares of y = a + b x; a, b >= 0."""

    __slots__ = ("_decay", "_w", "_x", "_xx", "_xy", "_y")

    def __init__(self, decay: float) -> None:
        self._decay = decay
        self._w = self._x = self._y = self._xx = self._xy = 0.0

    @property
    def empty(self) -> bool:
        return self._w == 0.0

    def add(self, x: float, y: float) -> None:
        d = self._decay
        self._w = d * self._w + 1.0
        self._x = d * self._x + x
        self._y = d * self._y + y
        self._xx = d * self._xx + x * x
        self._xy = d * self._xy + x * y

    def at(self, x: float) -> float:
        w, sx, sy = self._w, self._x, self._y
        mean_x, mean_y = sx / w, sy / w
        var = self._xx / w - mean_x * mean_x
        if var <= 1e-9 * max(1.0, mean_x * mean_x):  # one batch size seen: scale through the origin
            return mean_y * x / mean_x if mean_x > 0 else mean_y
        slope = (self._xy / w - mean_x * mean_y) / var
        if slope <= 0:  # noise: no size dependence measurable
            return mean_y
        intercept = mean_y - slope * mean_x
        if intercept < 0:  # the line through the origin instead
            return (self._xy / self._xx) * x
        return intercept + slope * x


class MeasuredLatency:
    """A :class:`LatencyModel` learnt from measured batches.

    ``decay``: weight kept by older batches per new one (0.98: the last ~50 batches count most).
    """

    def __init__(self, decay: float = 0.98) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be within (0, 1], got {decay}")
        self._prepare = _Line(decay)
        self._compute = _Line(decay)

    @classmethod
    def from_warmup(cls, batches: Iterable[tuple[int, int, float]], decay: float = 0.98) -> MeasuredLatency:
        """Seeded with warm-up batches ``(items, padded_tokens, compute_s)`` (prepare unknown)."""
        model = cls(decay)
        for items, padded_tokens, compute_s in batches:
            model._compute.add(_size(items, padded_tokens), compute_s)
        return model

    def estimate(self, items: int, padded_tokens: int) -> BatchEstimate | None:
        if self._compute.empty:
            return None
        x = _size(items, padded_tokens)
        prepare = 0.0 if self._prepare.empty else self._prepare.at(x)
        return BatchEstimate(prepare_s=prepare, compute_s=self._compute.at(x))

    def observe(self, items: int, padded_tokens: int, prepare_s: float, compute_s: float) -> None:
        x = _size(items, padded_tokens)
        self._prepare.add(x, max(0.0, prepare_s))
        self._compute.add(x, max(0.0, compute_s))


def _size(items: int, padded_tokens: int) -> float:
    return float(padded_tokens if padded_tokens > 0 else items)
