"""An engine instance slot whose engine can be replaced while a call on the old one still runs.

The watchdog (:mod:`server.scheduler.runner`) abandons an engine call that runs past its limit,
but the call keeps running in its thread on its engine. :class:`EngineSlot` lets the loader put
a fresh engine in that instance's place at once; the old engine is closed when its last call
returns (closing an engine under a running call could crash the process).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from engines.base import Engine, TensorSpec


class EngineSlot:
    """Implements :class:`engines.base.Engine` by delegating to the engine it holds now."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._active: dict[int, int] = {}  # id(engine) -> calls running on it
        self._retired: dict[int, Engine] = {}  # swapped out, closed when their calls end
        self._closed = False

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._engine.inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return self._engine.outputs

    def warmup(self) -> None:
        self._engine.warmup()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            engine = self._engine
            self._active[id(engine)] = self._active.get(id(engine), 0) + 1
        try:
            return engine.run(inputs)
        finally:
            with self._lock:
                left = self._active[id(engine)] - 1
                self._active[id(engine)] = left
                close = left == 0 and (id(engine) in self._retired
                                       or (self._closed and engine is self._engine))
                if left == 0:
                    del self._active[id(engine)]
                    self._retired.pop(id(engine), None)
            if close:
                engine.close()

    def swap(self, engine: Engine) -> None:
        """Serve from ``engine`` from now on; the old one closes when its calls end."""
        with self._lock:
            old, self._engine = self._engine, engine
            busy = self._active.get(id(old), 0) > 0
            if busy:
                self._retired[id(old)] = old
        if not busy:
            old.close()

    def close(self) -> None:
        """Close the engine now, or when the call running on it returns."""
        with self._lock:
            self._closed = True
            busy = self._active.get(id(self._engine), 0) > 0
        if not busy:
            self._engine.close()
