"""``python -m loadtests.int8_invariance``: speed and batch drift of a model's variants, side by side.

For each version given (default: 4, the dynamic int8 student, and 6, the same graph with fixed
activation scales), through the serving runtime (:mod:`engines.text`, 2 intra-op threads), on
the same test-split texts: texts/s of length-sorted batches of 32, arrival-order batches of 32
and one text per call, engine time only (tokenized beforehand). Rounds are interleaved (every
version runs each shape once per round), the median round and the fastest are reported, with
the ratio to the first version. Then each version's batch drift (pipeline/invariance.py): the
largest change of any class probability of a text against the same text run alone, over random
batch mixes and sub-batch splits. Prints a table and writes a JSON report (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from engines.length_batching import window_sorted
from engines.text import EncodedTexts, TextClassifier

DEFAULT_OUT = Path("loadtests/reports/int8_invariance.json")
SHAPES = ("sorted32", "arrival32", "batch1")


def _shapes(c: TextClassifier, texts: list[str], single: int) -> dict[str, list[EncodedTexts]]:
    lengths = c.encode(texts).lengths
    return {
        "sorted32": [c.encode([texts[i] for i in rows]) for rows in window_sorted(lengths, 32, len(texts))],
        "arrival32": [c.encode(texts[i : i + 32]) for i in range(0, len(texts), 32)],
        "batch1": [c.encode([t]) for t in texts[:single]],
    }


def measure(
    classifiers: dict[int, TextClassifier], texts: list[str], rounds: int, single: int
) -> dict[int, Any]:
    """Per version and shape: texts/s of every round."""
    shapes = _shapes(next(iter(classifiers.values())), texts, single)
    speeds: dict[int, dict[str, list[float]]] = {v: {s: [] for s in SHAPES} for v in classifiers}
    for c in classifiers.values():  # warm-up: first runs allocate
        for e in shapes["arrival32"][:4]:
            c.runtime.logits(c.engine, e)
    for _ in range(rounds):
        for shape, calls in shapes.items():
            n = sum(len(e) for e in calls)
            for version, c in classifiers.items():
                t0 = time.perf_counter()
                for e in calls:
                    c.runtime.logits(c.engine, e)
                speeds[version][shape].append(n / (time.perf_counter() - t0))
    return speeds


def main(argv: list[str] | None = None) -> int:
    from pipeline.build import splits_for
    from pipeline.evaluate import load_classifier
    from pipeline.invariance import batch_drift, sample
    from server.repository.config import load_model_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--model", default="airline-sentiment")
    p.add_argument("--versions", default="4,6", help="comma-separated; ratios are against the first")
    p.add_argument("--texts", type=int, default=1000, help="test texts for the batched shapes")
    p.add_argument("--single", type=int, default=300, help="test texts run one per call")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--drift-texts", type=int, default=512)
    p.add_argument("--drift-rounds", type=int, default=4)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = p.parse_args(argv)
    model_dir = args.repository / args.model
    max_length = load_model_config(model_dir / "config.yaml").max_length
    texts = list(splits_for(args.model).test.texts)
    versions = [int(v) for v in args.versions.split(",")]
    classifiers = {v: load_classifier(model_dir / str(v) / "model.onnx", model_dir / str(v), max_length)
                   for v in versions}  # fmt: skip
    try:
        speeds = measure(classifiers, texts[: args.texts], args.rounds, args.single)
        drift = {v: batch_drift(c, sample(texts, args.drift_texts), rounds=args.drift_rounds)
                 for v, c in classifiers.items()}  # fmt: skip
    finally:
        for c in classifiers.values():
            c.close()
    med = {v: {s: statistics.median(x) for s, x in r.items()} for v, r in speeds.items()}
    best = {v: {s: max(x) for s, x in r.items()} for v, r in speeds.items()}
    base = versions[0]
    print(f"{args.model}: texts/s, median of {args.rounds} interleaved rounds (fastest round), "
          f"ratio to version {base}")  # fmt: skip
    print("| version | " + " | ".join(SHAPES) + " | drift max | drift p99 |")
    print("| --- " * (len(SHAPES) + 3) + "|")
    for v in versions:
        cells = [f"{med[v][s]:.0f} ({best[v][s]:.0f}) {med[v][s] / med[base][s]:.2f}x" for s in SHAPES]
        print(f"| {v} | " + " | ".join(cells) + f" | {drift[v].max:.4f} | {drift[v].p99:.4f} |")
    report = {
        "script": "loadtests/int8_invariance.py", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.processor() or platform.machine(), "model": args.model,
        "rounds": args.rounds, "texts": min(args.texts, len(texts)), "single": args.single,
        "texts_per_s": {str(v): {s: [round(x, 1) for x in speeds[v][s]] for s in SHAPES} for v in versions},
        "median_ratio": {str(v): {s: round(med[v][s] / med[base][s], 3) for s in SHAPES} for v in versions},
        "drift": {str(v): d.as_dict() for v, d in drift.items()},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
