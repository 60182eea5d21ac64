"""TensorRT 10 backend: runs a serialized plan (``model.plan``).

Building a plan from an ONNX file is tooling, not serving: :func:`pipeline.tensorrt_plan.build_plan`.

Device buffers come from torch (``torch.empty(..., device="cuda")``), so neither pycuda nor
cuda-python is needed at run time. ``tensorrt`` and ``torch`` are imported inside functions:
importing this module is free, and a missing library surfaces as BackendUnavailable from
:func:`load`.

A plan is specific to the GPU model and TensorRT version that built it; build it once per
machine type, not at every load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engines.backend import BackendEngine
from engines.base import DATATYPE_TO_NUMPY, EngineSpec, TensorSpec
from engines.errors import ArtifactError, BackendUnavailable, InferenceError
from engines.options import UnsupportedSetting, check_options, cuda_index

INSTALL_HINT = "pip install 'sluice[tensorrt]' (needs an NVIDIA GPU and driver)"
KNOWN_OPTIONS: tuple[str, ...] = ()

#: TensorRT DataType member name -> KServe v2 datatype.
TRT_TO_DATATYPE = {
    "FLOAT": "FP32",
    "HALF": "FP16",
    "INT8": "INT8",
    "INT32": "INT32",
    "INT64": "INT64",
    "BOOL": "BOOL",
    "UINT8": "UINT8",
}

Shape = tuple[int, ...]


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailable(f"tensorrt is not installed ({e}); {INSTALL_HINT}") from e
    return tensorrt


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise BackendUnavailable(
            f"the tensorrt backend allocates GPU buffers with torch ({e}); "
            "pip install torch==2.13.0 (a CUDA build)"
        ) from e
    return torch


def _torch_dtype(torch: Any, datatype: str) -> Any:
    return {
        "FP32": torch.float32,
        "FP16": torch.float16,
        "INT8": torch.int8,
        "INT32": torch.int32,
        "INT64": torch.int64,
        "BOOL": torch.bool,
        "UINT8": torch.uint8,
    }[datatype]


class TensorRTEngine(BackendEngine):
    """An :class:`engines.base.Engine` over one TensorRT execution context."""

    def __init__(
        self, trt: Any, torch: Any, runtime: Any, engine: Any, spec: EngineSpec, device: Any
    ) -> None:
        self._trt = trt
        self._torch = torch
        self._runtime: Any = runtime  # must outlive the engine it deserialized
        self._engine: Any = engine
        self._context: Any = engine.create_execution_context()
        if self._context is None:
            raise ArtifactError(f"{spec.artifact}: cannot create an execution context (memory?)")
        self._device = device
        self._stream = torch.cuda.Stream(device=device)
        inputs, outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = engine.get_tensor_dtype(name)
            datatype = TRT_TO_DATATYPE.get(dtype.name)
            if datatype is None:
                raise ArtifactError(f"{spec.artifact}: '{name}' has unsupported type {dtype}")
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            tensor = TensorSpec(name, datatype, shape)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                inputs.append(tensor)
            else:
                outputs.append(tensor)
        super().__init__(spec, inputs, outputs)

    def profile_shapes(self, name: str) -> tuple[Shape, Shape, Shape]:
        """(min, opt, max) shapes of an input in optimization profile 0."""
        low, opt, high = self._engine.get_tensor_profile_shape(name, 0)
        return tuple(low), tuple(opt), tuple(high)

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch, context = self._torch, self._context
        try:
            with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
                keep_alive = []  # device buffers must outlive execute_async_v3
                for t in self._inputs:
                    host = np.ascontiguousarray(inputs[t.name], dtype=DATATYPE_TO_NUMPY[t.datatype])
                    buffer = torch.from_numpy(host).to(self._device, non_blocking=False)
                    if not context.set_input_shape(t.name, tuple(host.shape)):
                        raise InferenceError(
                            f"input '{t.name}' shape {host.shape} is outside the plan's "
                            f"optimization profile {self.profile_shapes(t.name)}"
                        )
                    context.set_tensor_address(t.name, buffer.data_ptr())
                    keep_alive.append(buffer)
                outputs = {}
                for t in self._outputs:
                    shape = tuple(context.get_tensor_shape(t.name))
                    buffer = torch.empty(
                        shape, dtype=_torch_dtype(torch, t.datatype), device=self._device
                    )
                    context.set_tensor_address(t.name, buffer.data_ptr())
                    outputs[t.name] = buffer
                if not context.execute_async_v3(self._stream.cuda_stream):
                    raise InferenceError("TensorRT execute_async_v3 returned false")
                self._stream.synchronize()
                return {name: buf.cpu().numpy() for name, buf in outputs.items()}
        except InferenceError:
            raise
        except Exception as e:
            raise InferenceError(f"TensorRT failed: {e}") from e

    def _warmup_limits(self) -> tuple[int, int]:
        max_batch, max_length = super()._warmup_limits()
        if self._inputs:
            # Never warm up beyond what the plan's profile accepts.
            _, _, high = self.profile_shapes(self._inputs[0].name)
            max_batch = min(max_batch, high[0])
            if len(high) > 1:
                max_length = min(max_length, high[1])
        return max_batch, max_length

    def _release(self) -> None:
        self._context = None  # the context first: it holds the engine's activation memory
        self._engine = None
        self._runtime = None
        self._torch.cuda.empty_cache()


def load(spec: EngineSpec) -> TensorRTEngine:
    """Deserialize ``spec.artifact`` (a TensorRT plan) onto ``spec.device`` (cuda only)."""
    check_options("tensorrt", spec.options, KNOWN_OPTIONS)
    trt = import_tensorrt()
    torch = _import_torch()
    index = cuda_index(spec.device)
    if index is None:
        raise UnsupportedSetting("the tensorrt backend needs device cuda or cuda:N")
    if not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt needs a GPU, and torch sees none here")
    path = Path(spec.artifact)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such TensorRT plan")
    device = torch.device("cuda", index)
    logger = trt.Logger(trt.Logger.WARNING)
    with torch.cuda.device(device):
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ArtifactError(
                f"{path}: TensorRT cannot deserialize it (corrupt, or built by another "
                "TensorRT version or for another GPU)"
            )
        return TensorRTEngine(trt, torch, runtime, engine, spec, device)
