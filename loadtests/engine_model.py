"""Load one text-classification model straight from the repository, without the server.

The naive reference server and the offline ceiling both use this, so they run exactly the
engine and tokenizer Sluice loads for the same ``config.yaml``: same backend, same artifact,
same ``max_length``, same intra-op thread count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine, EngineSpec
from server.repository.config import ModelConfig, load_model_config


def available_cores() -> int:
    """Cores this process may run on (its affinity set, which ``taskset`` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Classified:
    """One engine call's results and its token accounting."""

    probabilities: np.ndarray
    real_tokens: int
    padded_tokens: int


class TextModel:
    """Tokenizer + engine for one model version; ``classify`` runs one batch as given."""

    def __init__(
        self, name: str, version: str, config: ModelConfig, encoder: Any, engine: Engine,
        engine_threads: int,
    ) -> None:
        self.name = name
        self.engine_threads = engine_threads
        self.version = version
        self.config = config
        self.labels = config.labels
        self.encoder = encoder
        self.engine = engine
        self._input_names = [spec.name for spec in engine.inputs]

    def encode(self, texts: list[str]) -> Any:
        return self.encoder.encode(texts)

    def run_encoded(self, encoded: Any) -> Classified:
        feed = {name: getattr(encoded, name) for name in self._input_names}
        logits = self.engine.run(feed)["logits"]
        return Classified(
            softmax(np.asarray(logits, dtype=np.float32)),
            int(encoded.real_tokens),
            int(encoded.padded_tokens),
        )

    def classify(self, texts: list[str]) -> Classified:
        return self.run_encoded(self.encode(texts))

    def close(self) -> None:
        self.engine.close()


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return out


def latest_version(model_dir: Path, config: ModelConfig) -> tuple[str, Path]:
    """The version folder Sluice would serve first (the version policy's newest)."""
    numbered = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    chosen = config.version_policy.select(numbered)
    if not chosen:
        raise FileNotFoundError(f"{model_dir}: no version folder to serve (built yet?)")
    return str(chosen[0]), model_dir / str(chosen[0])


def engine_threads(config: ModelConfig, threads: int | None) -> int:
    """Intra-op threads: the config's when set, else ``threads``, else the available cores."""
    return config.engine.threads or threads or available_cores()


def load_text_model(repository: Path, model: str, threads: int | None = None) -> TextModel:
    """Load ``model``'s newest version from ``repository`` and warm it up."""
    from engines.registry import load_engine
    from engines.tokenization import TextEncoder

    model_dir = Path(repository) / model
    config = load_model_config(model_dir / "config.yaml")
    if config.task != "text-classification":
        raise ValueError(f"{model}: the load tests need a text-classification model")
    version, version_dir = latest_version(model_dir, config)
    e = config.engine
    spec = EngineSpec(
        artifact=version_dir / config.artifact,
        device=e.device,
        precision=e.precision,
        threads=engine_threads(config, threads),
        providers=e.providers,
        max_batch_size=config.batching.max_batch_size,
        max_length=config.max_length,
        options=dict(e.options),
    )
    engine = load_engine(e.backend, spec)
    encoder = TextEncoder.from_dir(version_dir, config.max_length)
    engine.warmup()
    return TextModel(model, version, config, encoder, engine, spec.threads)
