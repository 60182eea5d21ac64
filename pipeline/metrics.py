"""Classification metrics, dependency-free (no scikit-learn in the environment)."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / max(1, len(truth))


def agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Share of examples on which two models predict the same class."""
    return accuracy(a, b)


def macro_f1(truth: Sequence[int], predicted: Sequence[int], num_labels: int) -> float:
    """Unweighted mean of per-class F1; a class absent from both truth and predictions is skipped."""
    scores = []
    for c in range(num_labels):
        tp = sum(t == c and p == c for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, predicted, strict=True))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / max(1, len(scores))
