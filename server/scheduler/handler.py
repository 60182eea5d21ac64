"""The contract between the batcher and a model: prepare a batch, then execute it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

P_contra = TypeVar("P_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


@dataclass
class PreparedBatch:
    """What :meth:`BatchHandler.prepare` returns: the engine's input and its token counts."""

    data: Any
    real_tokens: int = 0
    padded_tokens: int = 0


class BatchHandler(Protocol[P_contra, R_co]):
    """Turns payloads into engine input and runs it. Both methods run in worker threads."""

    def prepare(self, payloads: Sequence[P_contra]) -> PreparedBatch:
        """Tokenize / stack the payloads of one batch."""
        ...

    def execute(self, prepared: PreparedBatch, instance: int) -> Sequence[R_co]:
        """Run one prepared batch on engine ``instance``: one result per payload, same order.

        Never called twice at once for the same ``instance``.
        """
        ...
