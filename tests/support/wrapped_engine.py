"""The base of the test engines that wrap a real one: everything but ``run`` is the inner
engine's (its tensors, its warm-up, its close), so a test engine writes only what it changes."""

from __future__ import annotations

from collections.abc import Sequence

from engines.base import Engine, TensorSpec


class WrappedEngine:
    """Delegates :class:`engines.base.Engine`'s members to ``inner``; subclasses add ``run``."""

    def __init__(self, inner: Engine) -> None:
        self._inner = inner

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._inner.inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return self._inner.outputs

    def warmup(self) -> None:
        self._inner.warmup()

    def close(self) -> None:
        self._inner.close()
