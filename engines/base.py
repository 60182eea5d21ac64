"""The one interface every backend implements, and the types that cross it.

Everything here is numpy-only so that the server can depend on it without pulling in
torch, onnxruntime or tensorrt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: KServe v2 datatype name -> numpy dtype (BYTES travels as numpy object arrays).
DATATYPE_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor an engine consumes or produces.

    ``shape`` includes the batch dimension first; ``-1`` marks a variable dimension
    (the batch dimension is always ``-1``).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class EngineSpec:
    """What a backend needs to load one model version.

    ``artifact`` is the file (``model.onnx``, ``model.plan``) or folder (a Hugging Face model
    folder) inside the version directory. ``options`` holds backend-specific settings that are
    not common to all backends (for example ``graph_optimization_level`` or ``cuda_graphs``).
    """

    artifact: Path
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    providers: tuple[str, ...] = ()
    max_batch_size: int = 32
    max_length: int = 128
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """A loaded model instance. ``run`` is called from one worker thread at a time per instance."""

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        """The tensors ``run`` expects, batch dimension first."""
        ...

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        """The tensors ``run`` returns, batch dimension first."""
        ...

    def warmup(self) -> None:
        """Run representative shapes once so the first request pays no start-up cost."""
        ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Every output has the same first dimension as the inputs."""
        ...

    def close(self) -> None:
        """Release the model's memory (and device memory). Idempotent."""
        ...


class EngineLoader(Protocol):
    """The ``load`` function each backend module exposes."""

    def __call__(self, spec: EngineSpec) -> Engine: ...
