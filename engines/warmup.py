"""Representative warm-up batches, shared by the backends.

The first run of a shape allocates memory arenas, picks kernels or captures graphs; warm-up
pays that before the model is marked ready, at the smallest and largest batches a text model
will see and at a short and a long sequence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from engines.base import DATATYPE_TO_NUMPY, Engine, TensorSpec

TEXT_INPUT_NAMES = frozenset({"input_ids", "attention_mask", "token_type_ids"})
SHORT_SEQUENCE = 16
#: Largest warm-up batch in tokens, so that max_batch_size x max_length can't exhaust memory.
WARMUP_MAX_TOKENS = 65536


def is_text_model(inputs: Sequence[TensorSpec]) -> bool:
    """True for a tokenized-text model: only int64 ``[batch, sequence]`` text inputs."""
    names = {t.name for t in inputs}
    return (
        "input_ids" in names
        and names <= TEXT_INPUT_NAMES
        and all(t.datatype == "INT64" and len(t.shape) == 2 for t in inputs)
    )


def text_batch(inputs: Sequence[TensorSpec], batch: int, sequence: int) -> dict[str, np.ndarray]:
    """An all-real-tokens text batch of the given size (token id 1 exists in any vocabulary)."""
    shape = (batch, sequence)
    fills = {"input_ids": 1, "attention_mask": 1, "token_type_ids": 0}
    return {t.name: np.full(shape, fills[t.name], dtype=np.int64) for t in inputs}


def zeros(spec: TensorSpec) -> np.ndarray:
    """A zero tensor of the declared shape, variable dimensions set to 1."""
    shape = tuple(1 if d < 0 else d for d in spec.shape)
    if spec.datatype == "BYTES":
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=DATATYPE_TO_NUMPY[spec.datatype])


def warmup_batches(
    inputs: Sequence[TensorSpec], max_batch_size: int, max_length: int
) -> list[dict[str, np.ndarray]]:
    """The batches to run once at load time."""
    if not is_text_model(inputs):
        return [{t.name: zeros(t) for t in inputs}]
    batches = []
    for sequence in sorted({min(SHORT_SEQUENCE, max_length), max_length}):
        for batch in sorted({1, max_batch_size}):
            batch = max(1, min(batch, WARMUP_MAX_TOKENS // sequence))
            batches.append(text_batch(inputs, batch, sequence))
    return batches


def timed_warmup(engine: Engine, max_batch_size: int, max_length: int) -> list[tuple[int, int, float]]:
    """Run the warm-up batches once more on a warmed-up ``engine`` and time each.

    Returns ``(items, padded_tokens, seconds)`` per batch (padded tokens: rows x sequence for a
    text model, 0 otherwise): what a warm batch of that shape costs, the first figures of the
    server's latency model before any request was served.
    """
    text = is_text_model(engine.inputs)
    timings = []
    for batch in warmup_batches(engine.inputs, max_batch_size, max_length):
        first = next(iter(batch.values()))
        rows = int(first.shape[0]) if first.ndim else 1
        tokens = rows * int(first.shape[1]) if text else 0
        started = time.perf_counter()
        engine.run(batch)
        timings.append((rows, tokens, time.perf_counter() - started))
    return timings
