"""Grouping texts of similar token length, so batches carry little padding.

Two cuts of the same idea (sort by length, then cut), shared by the server and the tools:

- :func:`sub_batches`: one batch split into engine calls under a padded-token budget (the
  server's ``sub_batch_tokens``);
- :func:`window_sorted`: a stream cut into batches of ``batch_size``, sorted by length inside
  windows of ``window_batches`` batches (what a length-aware scheduler hands the engine; the
  load tests' ceiling and the GPU benchmark measure it).

Pure numpy on index arrays: the caller tokenizes, these only reorder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IndexArray = np.ndarray[Any, np.dtype[np.intp]]


def sub_batches(lengths: np.ndarray, max_tokens: int) -> list[tuple[IndexArray, int]]:
    """Split a batch into engine calls of similar length: (row indices, padded width) each.

    Rows are sorted by token length and cut greedily so that no call computes more than
    ``max_tokens`` padded tokens (a call always takes at least one row). On a CPU, where cost
    follows padded tokens, this removes most padding for the price of a few more calls.
    ``max_tokens`` 0 means one call for the whole batch.
    """
    n = int(lengths.shape[0])
    if max_tokens <= 0 or n <= 1 or n * int(lengths.max()) <= max_tokens:
        return [(np.arange(n), int(lengths.max()) if n else 0)]
    order = np.argsort(lengths, kind="stable")
    ordered = lengths[order]
    calls = []
    start = 0
    while start < n:
        end = start + 1
        while end < n and (end + 1 - start) * int(ordered[end]) <= max_tokens:
            end += 1
        calls.append((order[start:end], int(ordered[end - 1])))
        start = end
    return calls


def window_sorted(
    lengths: np.ndarray, batch_size: int, window_batches: int, *, full_only: bool = False
) -> list[IndexArray]:
    """Row indices of each batch: sorted by length (stably) inside each window, then cut.

    A window is ``batch_size * window_batches`` consecutive rows; batches come out window by
    window, shortest first inside each. ``full_only`` drops batches of fewer than
    ``batch_size`` rows (a window's short remainder).
    """
    if batch_size < 1 or window_batches < 1:
        raise ValueError("batch_size and window_batches must be at least 1")
    lengths = np.asarray(lengths)
    window = batch_size * window_batches
    batches: list[IndexArray] = []
    for start in range(0, int(lengths.shape[0]), window):
        chunk = lengths[start : start + window]
        order = start + np.argsort(chunk, kind="stable")
        for cut in range(0, len(order), batch_size):
            rows = order[cut : cut + batch_size]
            if len(rows) == batch_size or not full_only:
                batches.append(rows)
    return batches
