"""What every built-in backend does the same way, written once.

:class:`BackendEngine` implements :class:`engines.base.Engine` around three hooks a backend
fills in: ``_run`` (one batch whose declared inputs are all present), ``_release`` (free the
model, called once) and, where needed, ``_before_warmup`` / ``_warmup_limits``. It owns the
checks every backend made on its own: a closed engine refuses to run, a missing input is an
:class:`~engines.errors.InferenceError` naming it, ``close`` is idempotent, and warm-up runs
the representative batches of :func:`engines.warmup.warmup_batches`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engines.base import EngineSpec, TensorSpec
from engines.errors import InferenceError
from engines.warmup import warmup_batches


class BackendEngine(ABC):
    """The shared part of a backend's engine; subclasses keep only what is their own."""

    def __init__(
        self, spec: EngineSpec, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec]
    ) -> None:
        self._spec = spec
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)
        self._closed = False

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return self._outputs

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the engine is open and every declared input is there, then run the batch."""
        if self._closed:
            raise InferenceError("engine is closed")
        missing = [t.name for t in self._inputs if t.name not in inputs]
        if missing:
            raise InferenceError(f"missing input(s) {missing}")
        return self._run(inputs)

    @abstractmethod
    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; every declared input is present (extra ones may be too)."""

    def warmup(self) -> None:
        self._before_warmup()
        max_batch, max_length = self._warmup_limits()
        for batch in warmup_batches(self._inputs, max_batch, max_length):
            self.run(batch)

    def _before_warmup(self) -> None:
        """Backend-specific warm-up before the representative batches (graph capture, say)."""
        return None

    def _warmup_limits(self) -> tuple[int, int]:
        """Largest warm-up batch and sequence: the spec's, unless the backend accepts less."""
        return self._spec.max_batch_size, self._spec.max_length

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._release()

    @abstractmethod
    def _release(self) -> None:
        """Free the model (and device memory); called once, by the first ``close``."""
