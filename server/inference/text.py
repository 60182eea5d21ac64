"""Text classification: texts in, class probabilities out.

``prepare`` tokenizes the whole batch at once (padding to the batch's own longest text) in a
worker thread; ``execute`` runs one engine instance and splits the probabilities back per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.base import Engine
from engines.tokenization import TextEncoder
from server.scheduler import PreparedBatch

TextPayload = tuple[str, ...]


def softmax(logits: np.ndarray) -> np.ndarray:
    z: np.ndarray = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def estimate_tokens(text: str, max_length: int) -> int:
    """A cheap token-count guess for batching decisions (about 4 bytes a word piece).

    Exact counts would mean tokenizing on the event loop; the batch is tokenized exactly later.
    """
    return min(max_length, len(text) // 4 + 3)


class TextClassificationHandler:
    """The ``BatchHandler`` of a text-classification model version."""

    def __init__(self, encoder: TextEncoder, engines: Sequence[Engine], num_labels: int) -> None:
        if not engines:
            raise ValueError("at least one engine instance is needed")
        self._encoder = encoder
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
        available = {
            "input_ids": encoded.input_ids,
            "attention_mask": encoded.attention_mask,
            "token_type_ids": encoded.token_type_ids,
        }
        feeds = {name: available[name] for name in self._feeds}
        counts = [len(payload) for payload in payloads]
        return PreparedBatch(
            data=(feeds, counts),
            real_tokens=encoded.real_tokens,
            padded_tokens=encoded.padded_tokens,
        )

    def execute(self, prepared: PreparedBatch, instance: int) -> list[np.ndarray]:
        feeds, counts = prepared.data
        logits = self._engines[instance].run(feeds)[self._output]
        total = sum(counts)
        if logits.shape[0] != total:
            raise RuntimeError(f"engine returned {logits.shape[0]} rows for {total} texts")
        probabilities = softmax(logits)
        return np.split(probabilities, np.cumsum(counts)[:-1])
