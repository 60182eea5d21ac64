"""A test engine whose logits are fixed: the tiny model's real ONNX engine (inputs, outputs,
warm-up), answering ``engine.options.logits`` for every row instead of its own.

Served through the engine extension point (``engine.backend: "tests.support.fixed_engine:load"``
with ``engine_plugins`` allowing ``tests.support``), so a test knows every score in advance:
ties and their order, exact probabilities. Every other option goes to the ONNX engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from engines.base import Engine, EngineSpec
from tests.support.wrapped_engine import WrappedEngine

BACKEND = "tests.support.fixed_engine:load"


class FixedEngine(WrappedEngine):
    """Implements :class:`engines.base.Engine` around ``inner``, with fixed logits."""

    def __init__(self, inner: Engine, logits: Sequence[float]) -> None:
        super().__init__(inner)
        self._logits = np.asarray(logits, dtype=np.float32)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = int(next(iter(inputs.values())).shape[0])
        return {"logits": np.tile(self._logits, (rows, 1))}


def load(spec: EngineSpec) -> FixedEngine:
    """The plugin factory: the same ``EngineSpec`` as ``engines.onnx_engine.load``."""
    from engines.onnx_engine import load as load_onnx

    options = dict(spec.options)
    logits = options.pop("logits")
    return FixedEngine(load_onnx(dataclasses.replace(spec, options=options)), logits)


def fixed_model_config(logits: Sequence[float], labels: Sequence[str]) -> str:
    """A ``config.yaml`` serving the tiny ONNX model's files through this engine."""
    return "\n".join([
        "task: text-classification",
        "max_length: 64",
        f"labels: [{', '.join(labels)}]",
        "engine:",
        f"  backend: \"{BACKEND}\"",
        "  artifact: model.onnx",
        f"  options: {{logits: [{', '.join(str(x) for x in logits)}]}}",
        "batching: {max_batch_size: 8, max_queue_delay_us: 2000, max_queue_size: 64}",
        "",
    ])
