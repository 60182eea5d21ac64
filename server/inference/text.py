"""Text classification in the server: texts in, class probabilities out.

The work is :mod:`engines.text`'s runtime; this module adds what only the server needs: the
character budget checked against the request, a token estimate for batching decisions, and
the batcher's handler (``prepare`` encodes the whole batch in a worker thread, ``execute``
runs one engine instance and splits the probabilities back per request).

A payload is a request's texts, or its texts already tokenized (:class:`TokenIds`, made by a
front-end process with the same tokenizer): ``prepare`` then only pads and cuts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.base import Engine
from engines.text import CallCutter, TextRuntime
from engines.tokenization import TextEncoder, TokenIds
from server.errors import InvalidInput
from server.scheduler import PreparedBatch

TextPayload = tuple[str, ...] | TokenIds


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


def token_cost(tokens: TokenIds) -> int:
    """The exact batching cost of pre-tokenized texts: the longest one's tokens."""
    return int(tokens.lengths.max()) if len(tokens) else 1


class TextClassificationHandler:
    """The ``BatchHandler`` of a text-classification model version: the text runtime's two
    stages on the batcher's two sides (``prepare`` encodes, ``execute`` runs one instance)."""

    def __init__(
        self,
        encoder: TextEncoder,
        engines: Sequence[Engine],
        num_labels: int,
        sub_batch_tokens: int = 0,
        cutter: CallCutter | None = None,
    ) -> None:
        """``cutter``: the cost model that cuts batches into engine calls (unless
        ``sub_batch_tokens`` pins the cut)."""
        if not engines:
            raise ValueError("at least one engine instance is needed")
        self._runtime = TextRuntime.for_engine(encoder, engines[0], sub_batch_tokens, cutter)
        self._engines = list(engines)

    def prepare(self, payloads: Sequence[TextPayload]) -> PreparedBatch:
        texts = [p for p in payloads if isinstance(p, tuple)]
        if len(texts) == len(payloads):
            encoded = self._runtime.encode([text for payload in texts for text in payload])
        else:  # pre-tokenized (a front end's); any texts among them tokenized here
            encoder = self._runtime.encoder
            encoded = self._runtime.encode_tokens(TokenIds.concat([
                p if isinstance(p, TokenIds) else encoder.encode_ids(p) for p in payloads]))
        counts = [len(payload) for payload in payloads]
        return PreparedBatch(data=(encoded, counts), real_tokens=encoded.real_tokens,
                             padded_tokens=encoded.padded_tokens)

    def execute(self, prepared: PreparedBatch, instance: int) -> list[np.ndarray]:
        encoded, counts = prepared.data
        probabilities = self._runtime.run(self._engines[instance], encoded).probabilities
        return np.split(probabilities, np.cumsum(counts)[:-1])
