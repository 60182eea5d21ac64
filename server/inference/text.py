"""Text classification: texts in, class probabilities out.

``prepare`` tokenizes the whole batch at once (padding to the batch's own longest text) in a
worker thread; ``execute`` runs one engine instance and splits the probabilities back per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.base import Engine
from engines.tokenization import TextEncoder
from server.errors import InvalidInput
from server.scheduler import PreparedBatch

TextPayload = tuple[str, ...]


def softmax(logits: np.ndarray) -> np.ndarray:
    z: np.ndarray = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def clip_texts(
    texts: Sequence[str], max_chars: int, strict: bool, field: str
) -> tuple[str, ...]:
    """Texts cut to ``max_chars`` before tokenizing, so one long text costs what a long-enough
    one costs; with ``strict`` a longer text is an :class:`InvalidInput` instead."""
    if all(len(t) <= max_chars for t in texts):
        return tuple(texts)
    if strict:
        j = next(j for j, t in enumerate(texts) if len(t) > max_chars)
        raise InvalidInput(f"{field}.data[{j}]: {len(texts[j])} characters; this model takes at "
                           f"most {max_chars} (strict_length: max_length x "
                           "max_text_chars_per_token)")
    return tuple(t[:max_chars] for t in texts)


def estimate_tokens(text: str, max_length: int) -> int:
    """A cheap token-count guess for batching decisions (about 4 bytes a word piece).

    Exact counts would mean tokenizing on the event loop; the batch is tokenized exactly later.
    """
    return min(max_length, len(text) // 4 + 3)


def sub_batches(lengths: np.ndarray, max_tokens: int) -> list[tuple[np.ndarray, int]]:
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


class TextClassificationHandler:
    """The ``BatchHandler`` of a text-classification model version."""

    def __init__(
        self,
        encoder: TextEncoder,
        engines: Sequence[Engine],
        num_labels: int,
        sub_batch_tokens: int = 0,
    ) -> None:
        if not engines:
            raise ValueError("at least one engine instance is needed")
        self._encoder = encoder
        self._sub_batch_tokens = sub_batch_tokens
        self._engines = list(engines)
        self._feeds = [spec.name for spec in engines[0].inputs]
        self._output = self._logits_name(engines[0], num_labels)

    @staticmethod
    def _logits_name(engine: Engine, num_labels: int) -> str:
        names = [spec.name for spec in engine.outputs]
        if "logits" in names:
            return "logits"
        if len(names) == 1:
            return names[0]
        raise ValueError(f"cannot tell which engine output holds the logits: {names}")

    def prepare(self, payloads: Sequence[TextPayload]) -> PreparedBatch:
        texts = [text for payload in payloads for text in payload]
        encoded = self._encoder.encode(texts)
        available = encoded.as_inputs()
        feeds = {name: available[name] for name in self._feeds}
        counts = [len(payload) for payload in payloads]
        calls = sub_batches(encoded.lengths, self._sub_batch_tokens)
        if len(calls) == 1:
            plan: list[tuple[np.ndarray | None, dict[str, np.ndarray]]] = [(None, feeds)]
            padded = encoded.padded_tokens
        else:
            plan, padded = [], 0
            for rows, width in calls:
                plan.append((rows, {k: v[rows, :width] for k, v in feeds.items()}))
                padded += len(rows) * width
        return PreparedBatch(data=(plan, counts), real_tokens=encoded.real_tokens,
                             padded_tokens=padded)

    def execute(self, prepared: PreparedBatch, instance: int) -> list[np.ndarray]:
        plan, counts = prepared.data
        engine, total = self._engines[instance], sum(counts)
        if len(plan) == 1:
            logits = engine.run(plan[0][1])[self._output]
        else:
            parts = [(rows, engine.run(feeds)[self._output]) for rows, feeds in plan]
            logits = np.empty((total, parts[0][1].shape[1]), dtype=parts[0][1].dtype)
            for rows, part in parts:
                if part.shape[0] != len(rows):
                    raise RuntimeError(f"engine returned {part.shape[0]} rows for {len(rows)} texts")
                logits[rows] = part
        if logits.shape[0] != total:
            raise RuntimeError(f"engine returned {logits.shape[0]} rows for {total} texts")
        probabilities = softmax(logits)
        return np.split(probabilities, np.cumsum(counts)[:-1])
