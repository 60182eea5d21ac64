"""The engine's offline ceiling: the same engine and texts, no HTTP, no queue, several policies.

Each figure is tokenize + engine run as a server would do them, for one *policy* at one
*split* of the cores into engine instances x intra-op threads:

- ``arrival-order``: texts in the load generator's arrival order, cut into batches of
  ``batch_size``, each padded to its own longest text (a server that batches but ignores lengths);
- ``length-sorted``: the same texts, sorted by length inside windows of ``window_batches``
  batches before cutting (what length-aware grouping can reach);
- ``batch-1``: one text per call.

Splits: on N cores, every ``k`` instances x ``N // k`` threads with ``k`` dividing N (on 2 cores:
1x2 and 2x1). The ``k`` instances run concurrently, each on a thread of its own taking the next
batch of the shared sequence (ONNX Runtime releases the GIL while it computes); a figure's
throughput is texts over wall time. The best of all figures is the "best offline policy"
Sluice is held to (:mod:`loadtests.targets`).

Runs in its own process (``python -m loadtests.ceiling ... --json``) so the engine's threads
never share the benchmark process with the load generator.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from engines.length_batching import window_sorted
from loadtests.corpus import corpus_for
from loadtests.engine_model import TextModel, load_text_model
from loadtests.stats import LatencySummary, RunResult

POLICIES = ("arrival-order", "length-sorted", "batch-1")


@dataclass(frozen=True)
class OfflineFigure:
    policy: str
    instances: int
    threads: int  # intra-op threads per instance
    batch_size: int
    texts: int
    batches: int
    seconds: float
    texts_per_s: float
    padding_waste: float
    median_call_ms: float
    p90_call_ms: float

    @property
    def split(self) -> str:
        return f"{self.instances}x{self.threads}"


@dataclass(frozen=True)
class Ceiling:
    model: str
    version: str
    cores: int
    figures: tuple[OfflineFigure, ...]

    def best(self) -> OfflineFigure:
        return max(self.figures, key=lambda f: f.texts_per_s)


def splits(cores: int) -> list[tuple[int, int]]:
    """(instances, threads per instance) for every instance count that divides ``cores``."""
    return [(k, cores // k) for k in range(1, cores + 1) if cores % k == 0]


def _measure(
    models: Sequence[TextModel], policy: str, batches: list[list[str]], duration_s: float
) -> OfflineFigure:
    """Run ``batches`` in order on ``models`` concurrently until ``duration_s`` has passed
    (at least 3 calls per instance, or every batch)."""
    lock = threading.Lock()
    next_index = 0
    times: list[float] = []
    counts = [0, 0, 0]  # texts, real tokens, padded tokens
    start = threading.Barrier(len(models) + 1)
    began = [0.0]

    def worker(model: TextModel) -> None:
        nonlocal next_index
        start.wait()
        mine = 0
        while True:
            with lock:
                late = time.perf_counter() - began[0] >= duration_s and mine >= 3
                if next_index >= len(batches) or late:
                    return
                batch = batches[next_index]
                next_index += 1
            t0 = time.perf_counter()
            result = model.classify(batch)
            spent = time.perf_counter() - t0
            mine += 1
            with lock:
                times.append(spent)
                counts[0] += len(batch)
                counts[1] += result.real_tokens
                counts[2] += result.padded_tokens

    threads = [threading.Thread(target=worker, args=(m,), daemon=True) for m in models]
    for t in threads:
        t.start()
    began[0] = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began[0]
    times.sort()
    texts, real, padded = counts
    return OfflineFigure(
        policy=policy, instances=len(models), threads=models[0].engine_threads,
        batch_size=max(len(b) for b in batches), texts=texts, batches=len(times), seconds=seconds,
        texts_per_s=texts / seconds, padding_waste=padded / real - 1.0 if real else 0.0,
        median_call_ms=statistics.median(times) * 1000.0,
        p90_call_ms=times[int(0.9 * (len(times) - 1))] * 1000.0,
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


def measure_policies(
    models: Sequence[TextModel],
    texts: list[str],
    batch_size: int = 32,
    duration_s: float = 5.0,
    window_batches: int = 8,
    batch1_texts: int = 200,
) -> list[OfflineFigure]:
    """The three policies on ``models`` (one split); ``texts`` in arrival order."""
    for model in models:
        model.classify(texts[:batch_size])  # warm the shapes once more
    arrival = _measure(models, "arrival-order", arrival_batches(texts, batch_size), duration_s)
    sample = texts[: arrival.texts]
    grouped = _measure(models, "length-sorted",
                       sorted_batches(models[0], sample, batch_size, window_batches), duration_s)
    singles = _measure(models, "batch-1", [[t] for t in texts[:batch1_texts]], duration_s)
    return [arrival, grouped, singles]


def measure_ceiling(
    load: Callable[[int], TextModel], texts: list[str], cores: int, batch_size: int = 32,
    duration_s: float = 5.0, batch1_texts: int = 200, only_splits: Sequence[str] = (),
) -> Ceiling:
    """Every policy at every split of ``cores``; ``load(threads)`` loads one instance."""
    figures: list[OfflineFigure] = []
    name = version = ""
    for instances, threads in splits(cores):
        if only_splits and f"{instances}x{threads}" not in only_splits:
            continue
        models = [load(threads) for _ in range(instances)]
        try:
            name, version = models[0].name, models[0].version
            figures.extend(measure_policies(models, texts, batch_size, duration_s,
                                            batch1_texts=batch1_texts))
        finally:
            for model in models:
                model.close()
    if not figures:
        raise ValueError(f"no split of {cores} cores matches {list(only_splits)}")
    return Ceiling(name, version, cores, tuple(figures))


def offline_rows(doc: dict[str, Any]) -> list[RunResult]:
    """The bench's table rows for a ceiling's JSON (``asdict(Ceiling)``): one per figure."""
    rows = []
    for f in doc["figures"]:
        split = f"{f['instances']}x{f['threads']}"
        what = "one text per call" if f["policy"] == "batch-1" else f"batches of {f['batch_size']}"
        ms = f["median_call_ms"]
        rows.append(RunResult(
            target="ceiling", shape=f["policy"], mode="offline", concurrency=f["instances"],
            duration_s=f["seconds"], requests=f["batches"], texts=f["texts"], errors=0,
            texts_per_s=f["texts_per_s"], requests_per_s=f["batches"] / f["seconds"],
            latency=LatencySummary(f["batches"], ms, ms, f["p90_call_ms"], math.nan, math.nan),
            mean_batch_size=f["texts"] / f["batches"], padding_waste=f["padding_waste"],
            extra={"load": f"{what}, {split}, no HTTP", "split": split},
        ))
    return rows


class ModelLoader:
    """Loads one more instance of the same model version with ``threads`` intra-op threads."""

    def __init__(self, repository: Path, model: str, version: str | None = None) -> None:
        self.repository, self.model, self.version = repository, model, version

    def __call__(self, threads: int) -> TextModel:
        return load_text_model(self.repository, self.model, threads, self.version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Offline ceiling of one model's engine.")
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--model", default="airline-sentiment")
    parser.add_argument("--version", default=None, help="version folder (default: the served one)")
    parser.add_argument("--cores", type=int, default=1, help="cores to split into instances")
    parser.add_argument("--splits", default="",
                        help="comma list of splits to measure, e.g. 1x2 (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per figure")
    parser.add_argument("--batch1-texts", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)

    result = measure_ceiling(
        ModelLoader(args.model_repository, args.model, args.version),
        list(corpus_for(args.model)), args.cores, args.batch_size, args.duration,
        args.batch1_texts, [s for s in args.splits.split(",") if s],
    )
    if args.json:
        sys.stdout.write(orjson.dumps(asdict(result)).decode() + "\n")
    else:
        for f in result.figures:
            print(f"{f.policy:14} {f.split:>4}: {f.texts_per_s:8.1f} texts/s, "
                  f"median call {f.median_call_ms:.2f} ms, padding {f.padding_waste:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
