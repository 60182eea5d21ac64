"""A fake engine for scheduler tests: deterministic outputs, a record of every batch, a gate.

Test code, not product code: built in-process by unit tests, or served through the engine
extension point (``engine.backend: "tests.support.fake_engine:load"`` with
``SLUICE_ENGINE_PLUGINS=tests.support``; ``engine.options``: ``num_labels``, ``input_names``).

Row ``i`` of ``logits`` is ``[sum of row i's real token ids, row i's real token count,
row i's first token id]`` (cut or zero-padded to ``num_labels`` columns), so a test can tell
whether each request got its own row back. Nothing here sleeps: a test that wants a batch in
flight sets ``gate`` and waits on ``entered``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engines.base import EngineSpec, TensorSpec

BACKEND = "tests.support.fake_engine:load"


def fake_logits(inputs: Mapping[str, np.ndarray], num_labels: int = 3) -> np.ndarray:
    """The logits :class:`FakeEngine` returns for ``inputs`` (``input_ids`` [+ mask])."""
    ids = np.asarray(inputs["input_ids"], dtype=np.int64)
    mask = np.asarray(inputs.get("attention_mask", np.ones_like(ids)), dtype=np.int64)
    rows = ids.shape[0]
    first = ids[:, 0] if ids.shape[1] else np.zeros(rows, dtype=np.int64)
    features = np.stack([(ids * mask).sum(axis=1), mask.sum(axis=1), first], axis=1)
    out = np.zeros((rows, num_labels), dtype=np.float32)
    width = min(num_labels, features.shape[1])
    out[:, :width] = features[:, :width]
    return out


class ParallelClock:
    """A fake timer for cost-grid tests: engine calls advance it by their cost, and calls made
    between two readings overlap (the reading advances by the longest, not the sum), as
    instances on their own cores do."""

    def __init__(self) -> None:
        self.now = 0.0
        self._pending = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self._pending
            self._pending = 0.0
            return self.now

    def spend(self, seconds: float) -> None:
        with self._lock:
            self._pending = max(self._pending, seconds)


@dataclass
class FakeEngine:
    """Implements :class:`engines.base.Engine` without a model."""

    num_labels: int = 3
    gate: threading.Event | None = None
    """When set, ``run`` blocks until the event is set."""
    fail_with: Exception | None = None
    """When set, ``run`` raises it (after the gate)."""
    wrong_count: bool = False
    """When true, ``run`` returns one row fewer than it was given."""
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    batches: list[dict[str, tuple[int, ...]]] = field(default_factory=list)
    """Input shapes of every ``run`` call, recorded on entry (before the gate)."""
    entered: threading.Event = field(default_factory=threading.Event)
    """Set whenever ``run`` is entered; a test may clear it between batches."""
    warmups: int = 0
    closed: bool = False
    cost: Callable[[int, int], float] | None = None
    """Seconds a call of (rows, padded width) costs on ``clock`` (cost-model tests)."""
    clock: ParallelClock | None = None

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return tuple(TensorSpec(n, "INT64", (-1, -1)) for n in self.input_names)

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return (TensorSpec("logits", "FP32", (-1, self.num_labels)),)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.batches.append({name: tuple(np.shape(a)) for name, a in inputs.items()})
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if self.cost is not None and self.clock is not None:
            ids = np.asarray(inputs["input_ids"])
            self.clock.spend(self.cost(int(ids.shape[0]), int(ids.shape[1])))
        logits = fake_logits(inputs, self.num_labels)
        if self.wrong_count:
            logits = logits[:-1]
        return {"logits": logits}

    def warmup(self) -> None:
        self.warmups += 1

    def close(self) -> None:
        self.closed = True


def load(spec: EngineSpec) -> FakeEngine:
    """The plugin factory (the same ``EngineSpec`` as a built-in backend's ``load``)."""
    names = spec.options.get("input_names", ("input_ids", "attention_mask"))
    return FakeEngine(
        num_labels=int(spec.options.get("num_labels", 3)),
        input_names=tuple(str(n) for n in names),
    )
