"""What the inference service takes and returns: plain values, no wire format, no HTTP.

Every field is a primitive, a tuple of them, or a numpy array, so a request or a result can
cross a process boundary (pickle, shared memory) unchanged: the front ends (``server/api``,
``server/protocol``) turn the wire into these and these back into the wire; the service
(``server/service.py``) computes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from engines.base import TensorSpec


@dataclass(frozen=True)
class ModelInfo:
    """What a front end needs to know of a model version to build its request."""

    name: str
    version: int
    is_text: bool
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class TextRequest:
    """Texts to classify with a text model."""

    model: str
    version: str | None
    texts: tuple[str, ...]
    top_k: int = 1
    """Labels wanted per text, best first (1..the model's classes)."""
    timeout_us: int | None = None
    priority: int = 0
    """1 (highest) .. the model's priority_levels; 0: the model's default level."""
    texts_field: str = "inputs"
    """How the request's texts are named in errors (``inputs``, ``inputs ('text')``)."""
    priority_field: str = "priority"


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


@dataclass(frozen=True, eq=False)
class TextResult:
    """Class probabilities of each text, and the best ``top_k`` classes of each."""

    model: str
    version: int
    labels: tuple[str, ...]
    """The model's class names (column ``j`` of ``probabilities`` is ``labels[j]``)."""
    probabilities: np.ndarray
    """float32 ``[texts, classes]``."""
    top: np.ndarray
    """int64 ``[texts, top_k]``: class indices, best first (from ``engines.scores.top_k_indices``)."""

    def best_labels(self) -> list[str]:
        """The best class of each text."""
        return [self.labels[j] for j in self.top[:, 0].tolist()]

    def predictions(self) -> list[list[Prediction]]:
        """The ``top_k`` best labels of each text with their probabilities, best first."""
        return [
            [Prediction(self.labels[j], float(row[j])) for j in idx]
            for row, idx in zip(self.probabilities, self.top.tolist(), strict=True)
        ]


@dataclass(frozen=True, eq=False)
class TensorRequest:
    """Named input arrays for a tensor model, the batch along the first axis."""

    model: str
    version: str | None
    inputs: Mapping[str, np.ndarray]
    timeout_us: int | None = None
    priority: int = 0
    priority_field: str = "parameters.priority"


@dataclass(frozen=True, eq=False)
class TensorResult:
    """The engine's named output arrays (their own dtypes), one row per input row."""

    model: str
    version: int
    outputs: dict[str, np.ndarray]
    labels: tuple[str, ...] = field(default=())
    """The model's class names, if its config has them (for a classification view)."""


@dataclass(frozen=True, eq=False)
class RankRequest:
    """Candidate items to score for one user on a ranking model (ids as in its tables)."""

    model: str
    version: str | None
    user_id: int
    item_ids: Sequence[int]
    top_k: int | None = None
    """The best ``top_k`` items only; all of them, sorted, when None."""
    timeout_us: int | None = None
    priority: int = 0


@dataclass(frozen=True, eq=False)
class RankResult:
    """The candidates best first: ``item_ids[i]`` (int64) scored ``scores[i]`` (float32)."""

    model: str
    version: int
    item_ids: np.ndarray
    scores: np.ndarray
