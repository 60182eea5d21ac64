"""The engine's offline ceiling: the same engine and texts, batched, no HTTP, no queue.

Three figures, each tokenize + engine run as a server would do them:

- ``arrival``: texts in the load generator's arrival order, cut into batches of
  ``batch_size``, each padded to its own longest text. This is what a server that batches
  perfectly but ignores lengths could reach; Sluice's target is 95% of it.
- ``sorted``: the same texts, sorted by length inside windows of ``window_batches`` batches
  before cutting (what length-aware grouping can reach).
- ``batch1``: one text per call, the engine's own latency floor at concurrency 1.

Runs in its own process (``python -m loadtests.ceiling ... --json``) so the engine's threads
never share the benchmark process with the load generator.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson

from engines.length_batching import window_sorted
from loadtests.corpus import airline_tweets
from loadtests.engine_model import TextModel, load_text_model


@dataclass(frozen=True)
class OfflineFigure:
    texts: int
    batches: int
    seconds: float
    texts_per_s: float
    padding_waste: float
    median_batch_ms: float


@dataclass(frozen=True)
class Ceiling:
    model: str
    version: str
    threads: int
    batch_size: int
    arrival: OfflineFigure
    sorted: OfflineFigure
    batch1_median_ms: float
    batch1_p90_ms: float


def _measure(model: TextModel, batches: list[list[str]], duration_s: float) -> OfflineFigure:
    times: list[float] = []
    texts = real = padded = 0
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        result = model.classify(batch)
        times.append(time.perf_counter() - t0)
        texts += len(batch)
        real += result.real_tokens
        padded += result.padded_tokens
        if time.perf_counter() - started >= duration_s and len(times) >= 3:
            break
    seconds = sum(times)
    return OfflineFigure(
        texts=texts,
        batches=len(times),
        seconds=seconds,
        texts_per_s=texts / seconds,
        padding_waste=padded / real - 1.0 if real else 0.0,
        median_batch_ms=statistics.median(times) * 1000.0,
    )


def arrival_batches(texts: list[str], batch_size: int) -> list[list[str]]:
    return [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]


def sorted_batches(
    model: TextModel, texts: list[str], batch_size: int, window_batches: int
) -> list[list[str]]:
    """Sort by token count inside each window of ``window_batches`` batches, then cut."""
    lengths = model.runtime.encoder.count_tokens(texts)
    return [[texts[i] for i in rows]
            for rows in window_sorted(np.asarray(lengths), batch_size, window_batches)]


def measure_ceiling(
    model: TextModel,
    texts: list[str],
    batch_size: int = 32,
    duration_s: float = 5.0,
    window_batches: int = 8,
    batch1_texts: int = 200,
) -> Ceiling:
    """Measure the three figures; ``texts`` in arrival order."""
    model.classify(texts[:batch_size])  # warm the shapes once more
    arrival = _measure(model, arrival_batches(texts, batch_size), duration_s)
    sample = texts[: arrival.texts]
    grouped = _measure(model, sorted_batches(model, sample, batch_size, window_batches), duration_s)
    singles: list[float] = []
    for text in texts[:batch1_texts]:
        t0 = time.perf_counter()
        model.classify([text])
        singles.append(time.perf_counter() - t0)
    singles.sort()
    return Ceiling(
        model=model.name,
        version=model.version,
        threads=model.engine_threads,
        batch_size=batch_size,
        arrival=arrival,
        sorted=grouped,
        batch1_median_ms=statistics.median(singles) * 1000.0,
        batch1_p90_ms=singles[int(0.9 * (len(singles) - 1))] * 1000.0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Offline ceiling of one model's engine.")
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--model", default="airline-sentiment")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per figure")
    parser.add_argument("--batch1-texts", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)

    model = load_text_model(args.model_repository, args.model, args.threads or None)
    try:
        result = measure_ceiling(
            model, list(airline_tweets()), args.batch_size, args.duration,
            batch1_texts=args.batch1_texts,
        )
    finally:
        model.close()
    if args.json:
        sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    else:
        for key, value in asdict(result).items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
