"""Deduplicate, then split with a fixed seed, so that no text is in two splits."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Split:
    """One part of a data set: texts and integer labels, in a fixed (shuffled) order."""

    texts: list[str]
    targets: list[int]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Splits:
    train: Split
    validation: Split
    test: Split
    duplicates_removed: int
    conflicts_removed: int


def dedupe(texts: list[str], targets: list[int]) -> tuple[list[str], list[int], int, int]:
    """One example per distinct text, labelled by majority; texts whose labels tie are dropped.

    Returns the texts, their labels, how many duplicate rows were folded in and how many
    texts were dropped as ties. Order is first appearance.
    """
    votes: dict[str, Counter[int]] = defaultdict(Counter)
    for text, target in zip(texts, targets, strict=True):
        votes[text][target] += 1
    out_texts, out_targets, conflicts = [], [], 0
    for text, counter in votes.items():
        ranked = counter.most_common(2)
        best, n = ranked[0]
        if len(ranked) > 1 and ranked[1][1] == n:
            conflicts += 1
            continue
        out_texts.append(text)
        out_targets.append(best)
    return out_texts, out_targets, len(texts) - len(votes), conflicts


def split(
    texts: list[str],
    targets: list[int],
    *,
    validation: float,
    test: float,
    seed: int,
    limit: int | None = None,
) -> Splits:
    """Dedupe, shuffle with ``seed``, optionally keep ``limit`` examples, cut into three parts."""
    unique_texts, unique_targets, duplicates, conflicts = dedupe(texts, targets)
    order = list(range(len(unique_texts)))
    random.Random(seed).shuffle(order)
    if limit is not None:
        order = order[:limit]
    n_test = max(1, round(len(order) * test))
    n_val = max(1, round(len(order) * validation))

    def part(indices: list[int]) -> Split:
        return Split([unique_texts[i] for i in indices], [unique_targets[i] for i in indices])

    return Splits(
        train=part(order[n_test + n_val :]),
        validation=part(order[n_test : n_test + n_val]),
        test=part(order[:n_test]),
        duplicates_removed=duplicates,
        conflicts_removed=conflicts,
    )


def split_as_built(texts: list[str], targets: list[int], settings: Any) -> Splits:
    """The three parts a build with ``settings`` (a ``BuildSettings``) cuts: the one place its
    fractions, seed and example limit are read, so the build and the tools that re-create its
    split (the sweep, the served-accuracy test) cannot drift apart."""
    return split(
        texts,
        targets,
        validation=settings.validation_fraction,
        test=settings.test_fraction,
        seed=settings.seed,
        limit=settings.example_limit,
    )
