"""Shape buckets for the CUDA-graph and ``torch.compile`` paths of the torch backend.

A CUDA graph replays fixed shapes only, and a compiled ``reduce-overhead`` module records one
graph per shape it sees. Padding each batch up to the nearest (batch, sequence) bucket bounds
the number of graphs while wasting little compute: rows and positions added here carry
``attention_mask == 0`` and are sliced off the output, so they don't change the real rows.

Pure numpy: testable without a GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engines.options import UnsupportedSetting

Bucket = tuple[int, int]


def default_buckets(limit: int, start: int) -> tuple[int, ...]:
    """Powers of two from ``start`` below ``limit``, then ``limit`` itself."""
    if limit < 1:
        raise ValueError(f"bucket limit must be positive, got {limit}")
    sizes = []
    size = max(1, min(start, limit))
    while size < limit:
        sizes.append(size)
        size *= 2
    sizes.append(limit)
    return tuple(sizes)


def parse_buckets(value: Any, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """An option's bucket list (sorted, unique, positive ints) or ``default`` when unset."""
    if value is None:
        return default
    valid = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )
    if not valid:
        raise UnsupportedSetting(f"{name} must be a non-empty list of positive integers: {value!r}")
    return tuple(sorted(set(value)))


def pick(buckets: Sequence[int], size: int) -> int | None:
    """The smallest bucket that holds ``size``, or None when ``size`` passes them all."""
    for bucket in buckets:
        if bucket >= size:
            return bucket
    return None


def pick_bucket(
    batch_buckets: Sequence[int], seq_buckets: Sequence[int], batch: int, sequence: int
) -> Bucket | None:
    b, s = pick(batch_buckets, batch), pick(seq_buckets, sequence)
    return None if b is None or s is None else (b, s)


def pad_to_bucket(
    inputs: Mapping[str, np.ndarray], names: Sequence[str], bucket: Bucket
) -> dict[str, np.ndarray]:
    """Zero-pad each ``[batch, sequence]`` input up to ``bucket``.

    Padding rows get ``attention_mask[row, 0] = 1``: a row that masks every position would
    make attention's softmax divide by zero (NaN) in some kernels. Those rows are discarded.
    """
    rows, cols = inputs[names[0]].shape
    padded = {}
    for name in names:
        out = np.zeros(bucket, dtype=np.int64)
        out[:rows, :cols] = inputs[name]
        padded[name] = out
    if "attention_mask" in padded:
        padded["attention_mask"][rows:, 0] = 1
    return padded
