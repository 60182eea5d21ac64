"""AUC on the rated test interactions; HitRate@10 and NDCG@10 of each test positive ranked
among ``candidates`` sampled movies the user never rated; the popularity baseline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.ranker.data import POSITIVE_RATING, Ratings, sample_unrated

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ranking_lists(
    test: Ratings, seen: list[set[int]], n_items: int, candidates: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(users [P], items [P, 1 + candidates]): each test positive first, then sampled unrated."""
    rng = np.random.default_rng(seed)
    pos = test.rating >= POSITIVE_RATING
    users = test.user[pos]
    lists = np.empty((len(users), 1 + candidates), dtype=np.int64)
    lists[:, 0] = test.item[pos]
    for row, u in enumerate(users.tolist()):
        lists[row, 1:] = sample_unrated(rng, seen[u], n_items, candidates)
    return users, lists


def hit_ndcg(scores: np.ndarray, k: int = 10) -> tuple[float, float]:
    """scores [P, C] with the positive in column 0; rank ties pessimistically."""
    rank = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    hit = rank < k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(hit.mean()), float(ndcg.mean())


def evaluate(
    score: Scorer, test: Ratings, users: np.ndarray, lists: np.ndarray
) -> dict[str, float]:
    labels = (test.rating >= POSITIVE_RATING).astype(np.int64)
    a = auc(labels, score(test.user, test.item))
    flat = score(np.repeat(users, lists.shape[1]), lists.reshape(-1)).reshape(lists.shape)
    hit, ndcg = hit_ndcg(flat)
    return {"auc": round(a, 4), "hit@10": round(hit, 4), "ndcg@10": round(ndcg, 4)}


def popularity(train: Ratings, n_items: int) -> Scorer:
    """Score = how many training users rated the movie (a tiny tie-breaker by positives)."""
    counts = np.bincount(train.item, minlength=n_items + 1).astype(np.float64)
    positives = np.bincount(train.item[train.rating >= POSITIVE_RATING], minlength=n_items + 1)
    table = counts + positives / (counts.max() + 1.0)
    return lambda users, items: table[items]


def mean(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in results])), 4) for k in results[0]}
