"""Load one text-classification model straight from the repository, without the server.

The naive reference server and the offline ceiling both use this, so they run exactly what
Sluice loads for the same ``config.yaml``: the server's EngineSpec builder
(:func:`server.repository.loader.engine_spec`: same backend, artifact, ``max_length`` and
intra-op threads) and the server's text runtime (:mod:`engines.text`: same tokenizer,
batch padding, sub-batching and softmax).
"""

from __future__ import annotations

from pathlib import Path

from engines.base import Engine
from engines.text import Classification, EncodedTexts, TextClassifier, TextRuntime
from server.cpus import available_cpus as available_cores
from server.repository.config import ModelConfig, load_model_config
from server.repository.loader import engine_spec

__all__ = ["Classification", "TextModel", "available_cores", "load_text_model"]


class TextModel(TextClassifier):
    """The runtime and one engine of one model version; ``classify`` runs one batch as given
    (one engine call per batch: the ceiling measures batches as formed, without sub-batching)."""

    def __init__(
        self, name: str, version: str, config: ModelConfig, runtime: TextRuntime, engine: Engine,
        engine_threads: int,
    ) -> None:
        super().__init__(runtime, engine)
        self.name = name
        self.version = version
        self.config = config
        self.labels = config.labels
        self.engine_threads = engine_threads

    def run_encoded(self, encoded: EncodedTexts) -> Classification:
        return self.run(encoded)


def latest_version(
    model_dir: Path, config: ModelConfig, version: str | None = None
) -> tuple[str, Path]:
    """The version folder Sluice would serve first (the version policy's newest), or
    ``version``'s folder when one is named (whatever the policy says)."""
    if version is not None:
        folder = model_dir / str(version)
        if not folder.is_dir():
            raise FileNotFoundError(f"{model_dir}: no version folder {version}")
        return str(version), folder
    numbered = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    chosen = config.version_policy.select(numbered)
    if not chosen:
        raise FileNotFoundError(f"{model_dir}: no version folder to serve (built yet?)")
    return str(chosen[0]), model_dir / str(chosen[0])


def load_text_model(
    repository: Path, model: str, threads: int | None = None, version: str | None = None
) -> TextModel:
    """Load ``model``'s served version (or ``version``) from ``repository`` and warm it up.

    Intra-op threads: the config's when set, else ``threads``, else the CPUs available here.
    """
    from engines.registry import load_engine
    from engines.tokenization import TextEncoder

    model_dir = Path(repository) / model
    config = load_model_config(model_dir / "config.yaml")
    if config.task != "text-classification":
        raise ValueError(f"{model}: the load tests need a text-classification model")
    version, version_dir = latest_version(model_dir, config, version)
    spec = engine_spec(config, version_dir, threads or available_cores())
    engine = load_engine(config.engine.backend, spec)
    try:
        runtime = TextRuntime.for_engine(TextEncoder.from_dir(version_dir, config.max_length), engine)
        engine.warmup()
    except BaseException:
        engine.close()
        raise
    return TextModel(model, version, config, runtime, engine, spec.threads)
