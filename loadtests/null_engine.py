"""A ``null`` engine for benchmarks: right-shaped zeros at once, so a run measures the server.

Served through the engine extension point: ``engine.backend: "loadtests.null_engine:load"``
with ``SLUICE_ENGINE_PLUGINS=loadtests``. ``engine.options``:

- ``inputs``: input names (default ``[input_ids, attention_mask]``, INT64 ``[-1, -1]``);
- ``outputs``: ``{name: [dims after the batch dimension]}`` (default ``{logits: [3]}``, FP32).

The artifact is never read. Never for production: it computes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engines.base import EngineSpec, TensorSpec

BACKEND = "loadtests.null_engine:load"


class NullEngine:
    """Implements :class:`engines.base.Engine`; ``run`` returns zeros of the declared shapes."""

    def __init__(self, inputs: Sequence[str], outputs: Mapping[str, Sequence[int]]) -> None:
        self._inputs = tuple(TensorSpec(n, "INT64", (-1, -1)) for n in inputs)
        self._outputs = tuple(TensorSpec(n, "FP32", (-1, *dims)) for n, dims in outputs.items())
        self.calls = 0

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return self._outputs

    def warmup(self) -> None:
        pass

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        rows = int(next(iter(inputs.values())).shape[0]) if inputs else 0
        return {s.name: np.zeros((rows, *s.shape[1:]), dtype=np.float32) for s in self._outputs}

    def close(self) -> None:
        pass


def load(spec: EngineSpec) -> NullEngine:
    """The plugin factory (the same ``EngineSpec`` as a built-in backend's ``load``)."""
    options: dict[str, Any] = dict(spec.options)
    inputs = options.get("inputs", ["input_ids", "attention_mask"])
    outputs = options.get("outputs", {"logits": [3]})
    return NullEngine([str(n) for n in inputs],
                      {str(k): [int(d) for d in v] for k, v in outputs.items()})
