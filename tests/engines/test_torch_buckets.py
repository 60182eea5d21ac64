"""Bucket choice and padding for the CUDA-graph paths (pure numpy, runs anywhere)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.options import UnsupportedSetting
from engines.torch_buckets import default_buckets, pad_to_bucket, parse_buckets, pick_bucket


def test_default_buckets_are_powers_of_two_up_to_the_limit() -> None:
    assert default_buckets(32, 1) == (1, 2, 4, 8, 16, 32)
    assert default_buckets(24, 1) == (1, 2, 4, 8, 16, 24)
    assert default_buckets(128, 16) == (16, 32, 64, 128)
    assert default_buckets(8, 16) == (8,)


def test_pick_bucket_takes_the_smallest_that_fits() -> None:
    assert pick_bucket((1, 4, 8), (16, 64), 3, 17) == (4, 64)
    assert pick_bucket((1, 4, 8), (16, 64), 1, 16) == (1, 16)
    assert pick_bucket((1, 4, 8), (16, 64), 9, 16) is None
    assert pick_bucket((1, 4, 8), (16, 64), 2, 65) is None


def test_parse_buckets_sorts_and_validates() -> None:
    assert parse_buckets(None, "b", (1, 2)) == (1, 2)
    assert parse_buckets([8, 2, 8], "b", (1,)) == (2, 8)
    for bad in ([], [0], ["8"], "8", [True]):
        with pytest.raises(UnsupportedSetting, match="positive integers"):
            parse_buckets(bad, "b", (1,))


def test_padding_keeps_rows_and_gives_padding_rows_one_attended_token() -> None:
    inputs = {
        "input_ids": np.array([[101, 7, 102], [101, 102, 0]]),
        "attention_mask": np.array([[1, 1, 1], [1, 1, 0]]),
    }
    padded = pad_to_bucket(inputs, ["input_ids", "attention_mask"], (4, 5))
    assert padded["input_ids"].tolist() == [
        [101, 7, 102, 0, 0],
        [101, 102, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    assert padded["attention_mask"].tolist() == [
        [1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
    ]
