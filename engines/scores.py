"""Logits to what a caller reads: probabilities, the best label, the ``k`` best labels.

The one softmax and the one top-k of the project: the server, the pipeline's evaluation and
the load tests all score through these, so a card's accuracy is the served answer's accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IndexArray = np.ndarray[Any, np.dtype[np.intp]]


def softmax(logits: np.ndarray, dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
    """Row-wise softmax over the last axis, computed in ``dtype`` (float32 as served).

    Shifted by each row's maximum first, so large logits don't overflow.
    """
    z: np.ndarray = np.asarray(logits).astype(dtype)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def top_k_indices(scores: np.ndarray, k: int | None = None) -> IndexArray:
    """The indices of the ``k`` best classes of each row, best first: ``[..., k]`` (all of them,
    sorted, when ``k`` is None; ``k`` past the number of classes gives them all).

    Ties keep the lower index first (a stable sort; ``k=1`` is ``argmax``, which also takes the
    first of equals), so answers are deterministic. The server's callers (classify's labels,
    the v2 ``label`` output and classification extension, /rank's order) take indices only:
    gathering the scores too costs 5 us a request at k=1.
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k == 1:  # the common case (a label per text), without a sort
        first: IndexArray = scores.argmax(axis=-1)[..., None]
        return first
    order: IndexArray = np.argsort(-scores, axis=-1, kind="stable")
    return order if k is None else order[..., :k]


def top_k(scores: np.ndarray, k: int) -> tuple[IndexArray, np.ndarray]:
    """The ``k`` best classes of each row, best first: ``(indices, scores)``, both ``[..., k]``."""
    order = top_k_indices(scores, k)
    return order, np.take_along_axis(scores, order, axis=-1)


def best(scores: np.ndarray) -> IndexArray:
    """The best class of each row (top-1 of :func:`top_k`)."""
    order, _ = top_k(scores, 1)
    return order[..., 0]


def label_names(indices: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Class indices (one per row) as label names."""
    return [labels[int(i)] for i in np.asarray(indices).reshape(-1)]
