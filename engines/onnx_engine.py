"""ONNX Runtime backend: one ``InferenceSession`` per engine instance.

Session settings aim at a server running several instances side by side: intra-op threads
from the spec (0 lets ONNX Runtime use every core), one inter-op thread and sequential
execution (BERT-class graphs are a chain; parallel execution only adds scheduling).

Options (``spec.options``):

- ``graph_optimization_level``: ``disable``, ``basic``, ``extended``, ``layout`` or ``all``
  (default). Graphs already fused offline by the BERT optimizer gain little from ``all``.
- ``allow_spinning``: whether idle intra-op threads spin (ONNX Runtime's default, true).
  Spinning lowers latency but burns cores between batches; turn it off when several
  instances share few cores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from engines.backend import BackendEngine
from engines.base import DATATYPE_TO_NUMPY, EngineSpec, TensorSpec
from engines.errors import ArtifactError, BackendUnavailable, InferenceError
from engines.options import GPU_PROVIDERS, UnsupportedSetting, check_options, cuda_index

KNOWN_OPTIONS = ("graph_optimization_level", "allow_spinning")

#: ONNX Runtime's type strings -> KServe v2 datatypes.
ORT_TO_DATATYPE: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}


def _session_options(spec: EngineSpec) -> ort.SessionOptions:
    level = str(spec.options.get("graph_optimization_level", "all")).lower()
    if level not in _OPTIMIZATION_LEVELS:
        raise UnsupportedSetting(
            f"graph_optimization_level must be one of {sorted(_OPTIMIZATION_LEVELS)}, got '{level}'"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _OPTIMIZATION_LEVELS[level]
    )
    if "allow_spinning" in spec.options:
        spinning = "1" if spec.options["allow_spinning"] else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return options


def _providers(spec: EngineSpec) -> list[str | tuple[str, dict[str, Any]]]:
    """Providers in preference order, GPU ones told which device to use."""
    index = cuda_index(spec.device)
    names = list(spec.providers)
    if not names:
        names = ["CPUExecutionProvider"]
        if index is not None:
            names.insert(0, "CUDAExecutionProvider")
    available = ort.get_available_providers()
    missing = [n for n in names if n not in available]
    if missing:
        hint = (
            "install the GPU build with pip install 'sluice[gpu]' (and uninstall onnxruntime)"
            if any(n in GPU_PROVIDERS for n in missing)
            else "check the provider names"
        )
        raise BackendUnavailable(
            f"ONNX Runtime here lacks {missing} (available: {available}); {hint}"
        )
    return [
        (n, {"device_id": index}) if index is not None and n in GPU_PROVIDERS else n
        for n in names
    ]


def _shape(dims: Sequence[Any]) -> tuple[int, ...]:
    """Symbolic (``"batch"``) and unknown (``None``) dimensions become -1."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)


def _specs(args: Sequence[Any]) -> tuple[TensorSpec, ...]:
    specs = []
    for a in args:
        datatype = ORT_TO_DATATYPE.get(a.type)
        if datatype is None:
            raise ArtifactError(f"tensor '{a.name}' has unsupported type {a.type}")
        specs.append(TensorSpec(a.name, datatype, _shape(a.shape)))
    return tuple(specs)


class OnnxEngine(BackendEngine):
    """An :class:`engines.base.Engine` running one ONNX model with ONNX Runtime."""

    def __init__(self, session: ort.InferenceSession, spec: EngineSpec) -> None:
        super().__init__(spec, _specs(session.get_inputs()), _specs(session.get_outputs()))
        self._session: ort.InferenceSession | None = session
        self._output_names = [t.name for t in self._outputs]

    @property
    def providers(self) -> list[str]:
        """The providers the session actually uses, in order."""
        return list(self._session.get_providers()) if self._session is not None else []

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:  # closed by another thread since run's check
            raise InferenceError("engine is closed")
        # Only the declared inputs: a model without token_type_ids simply doesn't get them.
        feed = {
            t.name: np.ascontiguousarray(inputs[t.name], dtype=DATATYPE_TO_NUMPY[t.datatype])
            for t in self._inputs
        }
        try:
            results = session.run(self._output_names, feed)
        except Exception as e:  # ORT raises its own pybind exception types
            raise InferenceError(f"ONNX Runtime failed: {e}") from e
        return dict(zip(self._output_names, results, strict=True))

    def _release(self) -> None:
        self._session = None  # ORT frees the session (and its arena) with the last reference


def load(spec: EngineSpec) -> OnnxEngine:
    """Open ``spec.artifact`` (a ``.onnx`` file) with the settings in ``spec``."""
    check_options("onnxruntime", spec.options, KNOWN_OPTIONS)
    path = spec.artifact
    if not path.is_file():
        raise ArtifactError(f"{path}: no such ONNX file")
    options = _session_options(spec)
    providers = _providers(spec)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:
        raise ArtifactError(f"{path}: ONNX Runtime cannot load it: {e}") from e
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if session.get_providers()[0] != wanted:
        raise BackendUnavailable(
            f"{path}: ONNX Runtime fell back to {session.get_providers()} instead of {wanted}"
        )
    return OnnxEngine(session, spec)
