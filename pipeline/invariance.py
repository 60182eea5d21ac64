"""Batch invariance: how far a text's answer moves with its batch-mates and the batch's cut.

For each text of a sample, the largest change of any class probability against the same text
run alone (batch of one), over random batch mixes: every round shuffles the sample, cuts it into
batches of random sizes (1 to ``max_batch``), and runs each batch through the serving code
(:class:`engines.text.TextRuntime`, the server's tokenize-and-run path) with a random
``sub_batch_tokens`` (0: one engine call, else length-sorted calls under that padded-token
budget). So each text meets different batch-mates, padding widths and engine-call splits.

The work is fixed by the arguments (sample size, rounds), not by a clock, so a seeded run
repeats itself (and the card figure is reproduced by a rebuild on the same machine and ONNX
Runtime): its time is bounded by ``rounds + 1`` passes over the sample.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engines.base import Engine
from engines.text import TextClassifier, TextRuntime

#: The sub-batch budgets a round draws from (0: the whole batch in one engine call).
SUB_BATCH_TOKENS = (0, 64, 128, 256, 512)


@dataclass(frozen=True)
class Drift:
    """Per-text largest probability change against the text run alone, summarised."""

    texts: int
    rounds: int
    max: float
    p99: float
    mean: float
    changed_top1: int
    """Texts whose top label differed from the alone run in at least one mix."""

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _probabilities(runtime: TextRuntime, engine: Engine, texts: Sequence[str]) -> np.ndarray:
    return runtime.run(engine, runtime.encode(texts)).probabilities


def batch_drift(
    classifier: TextClassifier,
    texts: Sequence[str],
    *,
    rounds: int = 4,
    max_batch: int = 32,
    sub_batch_tokens: Sequence[int] = SUB_BATCH_TOKENS,
    seed: int = 0,
) -> Drift:
    """The drift of ``texts`` on ``classifier``'s engine (see the module docstring)."""
    if not texts:
        raise ValueError("batch_drift needs at least one text")
    rng = random.Random(seed)
    engine, base = classifier.engine, classifier.runtime
    runtimes = {
        budget: TextRuntime(base.encoder, base.input_names, base.output_name, budget)
        for budget in sub_batch_tokens
    }
    alone = np.concatenate([_probabilities(runtimes[0], engine, [t]) for t in texts])
    worst = np.zeros(len(texts), dtype=np.float64)
    flipped = np.zeros(len(texts), dtype=bool)
    order = list(range(len(texts)))
    for _ in range(rounds):
        rng.shuffle(order)
        start = 0
        while start < len(order):
            rows = order[start : start + rng.randint(1, max_batch)]
            start += len(rows)
            runtime = runtimes[rng.choice(list(sub_batch_tokens))]
            probs = _probabilities(runtime, engine, [texts[i] for i in rows])
            diff = np.abs(probs.astype(np.float64) - alone[rows]).max(axis=1)
            worst[rows] = np.maximum(worst[rows], diff)
            flipped[rows] |= probs.argmax(axis=1) != alone[rows].argmax(axis=1)
    return Drift(
        texts=len(texts),
        rounds=rounds,
        max=float(worst.max()),
        p99=float(np.percentile(worst, 99)),
        mean=float(worst.mean()),
        changed_top1=int(flipped.sum()),
    )


def sample(texts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """A seeded sample of at most ``n`` texts (all of them, in order, when there are fewer)."""
    if len(texts) <= n:
        return list(texts)
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n))]


def measure_drift(
    model_path: Path,
    tokenizer_dir: Path,
    max_length: int,
    texts: Sequence[str],
    *,
    sample_texts: int = 256,
    rounds: int = 4,
    seed: int = 0,
) -> Drift:
    """The drift of one ONNX variant on a seeded sample of ``texts`` (the build's card figure)."""
    from pipeline.evaluate import load_classifier

    classifier = load_classifier(model_path, tokenizer_dir, max_length)
    try:
        return batch_drift(classifier, sample(texts, sample_texts, seed), rounds=rounds, seed=seed)
    finally:
        classifier.close()
