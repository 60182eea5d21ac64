"""A fault-injecting engine for tests: a real ONNX engine of the tiny model, made to misbehave.

Served through the engine extension point (``engine.backend:
"tests.support.fault_engine:load"``, with ``SLUICE_ENGINE_PLUGINS=tests.support``). Its faults
come from ``engine.options``:

- ``fault: crash_on_load``: ``load`` raises (a model that cannot load).
- ``fault_control: <path>``: a JSON file read on every ``run`` (so a test switches one running
  server between modes with :func:`set_fault`): ``{"mode": ..., ...}`` with ``mode`` one of

  ``none``          the real result
  ``raise``         raises ``InferenceError("injected fault")``
  ``hang``          a busy loop (burns a core like a real stuck call) for ``hang_s`` (default 5),
                    then the real result: bounded so tests end
  ``slow``          a busy loop for ``slow_s`` (default 0.3), then the real result
  ``oom``           ``EngineOutOfMemory`` for batches of more than ``oom_above_rows`` rows (1)
  ``wrong_length``  one output row fewer than inputs

Every other option goes to the ONNX engine.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine, EngineSpec
from engines.errors import EngineOutOfMemory, InferenceError
from tests.support.wrapped_engine import WrappedEngine

BACKEND = "tests.support.fault_engine:load"
MODES = ("none", "raise", "hang", "slow", "oom", "wrong_length")
_OWN_OPTIONS = ("fault", "fault_control")


def set_fault(control: Path, mode: str, **params: float) -> None:
    """Switch the engines reading ``control`` to ``mode`` (atomically: write, then rename)."""
    if mode not in MODES:
        raise ValueError(f"unknown fault mode {mode!r} (known: {MODES})")
    tmp = control.with_suffix(".tmp")
    tmp.write_text(json.dumps({"mode": mode, **params}))
    tmp.replace(control)


def burn(seconds: float) -> None:
    """Keep a core busy for ``seconds`` (a hang that costs what a real one costs, not a sleep)."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


class FaultEngine(WrappedEngine):
    """Implements :class:`engines.base.Engine` around ``inner``."""

    def __init__(self, inner: Engine, control: Path | None) -> None:
        super().__init__(inner)
        self._control = control
        self.calls = 0

    def _fault(self) -> dict[str, Any]:
        if self._control is None or not self._control.is_file():
            return {"mode": "none"}
        doc: dict[str, Any] = json.loads(self._control.read_text())
        return doc

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        fault = self._fault()
        mode = fault.get("mode", "none")
        rows = int(next(iter(inputs.values())).shape[0])
        if mode == "raise":
            raise InferenceError("injected fault")
        if mode == "hang":
            burn(float(fault.get("hang_s", 5.0)))
        elif mode == "slow":
            burn(float(fault.get("slow_s", 0.3)))
        elif mode == "oom" and rows > int(fault.get("oom_above_rows", 1)):
            raise EngineOutOfMemory(f"injected CUDA out of memory (batch of {rows} rows)")
        outputs = self._inner.run(inputs)
        if mode == "wrong_length":
            return {name: array[:-1] for name, array in outputs.items()}
        return outputs


def load(spec: EngineSpec) -> FaultEngine:
    """The plugin factory: the same ``EngineSpec`` as ``engines.onnx_engine.load``."""
    options = dict(spec.options)
    if options.get("fault") == "crash_on_load":
        raise RuntimeError("injected crash on load")
    control = options.get("fault_control")
    from engines.onnx_engine import load as load_onnx

    inner_spec = dataclasses.replace(
        spec, options={k: v for k, v in options.items() if k not in _OWN_OPTIONS}
    )
    return FaultEngine(load_onnx(inner_spec), Path(control) if control else None)


def fault_model_config(*, control: Path | None = None, crash_on_load: bool = False,
                       max_batch_size: int = 8, queue_delay_us: int = 5000) -> str:
    """A ``config.yaml`` serving the tiny ONNX model (``model.onnx`` + tokenizer) via this engine."""
    options = []
    if control is not None:
        options.append(f"    fault_control: {json.dumps(str(control))}")
    if crash_on_load:
        options.append("    fault: crash_on_load")
    return "\n".join([
        "task: text-classification",
        "max_length: 64",
        "labels: [negative, neutral, positive]",
        "engine:",
        f"  backend: \"{BACKEND}\"",
        "  artifact: model.onnx",
        "  options:" if options else "  options: {}",
        *options,
        "batching:",
        f"  max_batch_size: {max_batch_size}",
        f"  max_queue_delay_us: {queue_delay_us}",
        "  max_queue_size: 64",
        "",
    ])
