"""Training batch order: every example once per epoch, and bucketed batches pad less."""

from __future__ import annotations

import random

import pytest

from pipeline.train import batch_order, padded_tokens


def _lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 60) for _ in range(n)]


@pytest.mark.parametrize("window", [0, 1, 4, 50])
def test_every_example_exactly_once_in_batches_of_the_size(window: int) -> None:
    lengths = _lengths(1003)
    batches = batch_order(lengths, 32, window, random.Random(1))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1003))
    assert all(len(b) <= 32 for b in batches)
    assert sum(len(b) < 32 for b in batches) <= max(1, (1003 // (32 * max(window, 1))) + 1)


def test_bucketed_batches_are_sorted_inside_and_pad_far_less_than_random() -> None:
    lengths = _lengths(3200)
    random_batches = batch_order(lengths, 32, 0, random.Random(1))
    bucketed = batch_order(lengths, 32, 50, random.Random(1))
    for b in bucketed:
        spans = [lengths[i] for i in b]
        assert spans == sorted(spans)
    assert padded_tokens(lengths, bucketed) < 0.7 * padded_tokens(lengths, random_batches)
    assert padded_tokens(lengths, bucketed) >= sum(lengths)


def test_bucketed_batches_come_in_shuffled_order_and_epochs_differ() -> None:
    lengths = _lengths(3200)
    rng = random.Random(1)
    first, second = batch_order(lengths, 32, 50, rng), batch_order(lengths, 32, 50, rng)
    longest = [max(lengths[i] for i in b) for b in first]
    assert longest != sorted(longest)  # not short-to-long within the epoch
    assert first != second
    assert batch_order(lengths, 32, 50, random.Random(1)) == first  # seeded


def test_padded_tokens_counts_each_batch_at_its_longest() -> None:
    assert padded_tokens([3, 5, 2, 7], [[0, 1], [2, 3]]) == 2 * 5 + 2 * 7
