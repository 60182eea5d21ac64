"""``sluice build``: make the default models of the catalogue (pipeline/catalogue.py).

This module picks the models, skips those whose stamp matches and whose served artifacts exist,
and drives one progress bar over the whole build; ``pipeline/textbuild.py`` builds a text model,
``pipeline/ranker/build.py`` the movie ranker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pipeline.catalogue import BY_NAME, DEFAULT_MODELS, TEXT_MODELS, entry, settings_for
from pipeline.errors import BuildError
from pipeline.split import Splits, split_as_built
from pipeline.textbuild import STAGES

__all__ = ["DEFAULT_MODELS", "TEXT_MODELS", "build", "estimate_seconds", "missing_models", "recipe_stamp",
           "splits_for"]

#: A smoke build takes about this share of a full build's time.
_SMOKE_SCALE = 0.05


def estimate_seconds(model_dir: Path, name: str, profile: str) -> dict[str, float]:
    """Expected seconds per stage: the last build's own timings (from this machine's
    ``measured.json``) if it was built with the same profile, else the reference machine's."""
    model = entry(name)
    try:
        measured = json.loads((model_dir / "measured.json").read_text(encoding="utf-8"))
        if measured["profile"] == profile and model.kind == "text":
            # "write" is timed after measured.json is written, so it is never in there
            return {k: float(measured["timings_s"].get(k, 1.0)) for k in STAGES}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    scale = 1.0 if profile == "full" else _SMOKE_SCALE
    return {k: v * scale for k, v in model.estimate_s.items()}


def _served_versions(model_dir: Path) -> tuple[list[int], str]:
    """The versions ``config.yaml`` serves and the artifact each must hold (per its backend)."""
    from server.errors import ConfigError
    from server.repository.config import load_model_config

    try:
        config = load_model_config(model_dir / "config.yaml")
    except ConfigError:
        return [], "model.onnx"
    if config.version_policy.specific is not None:
        return list(config.version_policy.specific.versions), config.artifact
    on_disk = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return config.version_policy.select(on_disk), config.artifact


def recipe_stamp(name: str, profile: str = "full") -> str:
    """The build stamp of ``name``'s recipe: what its ``build/stamp.json`` and its committed
    card's ``build_stamp`` hold after a build of ``profile`` (no build needed to compute it)."""
    model = entry(name)
    if model.kind == "ranker":
        from pipeline.ranker.build import ranker_stamp

        return ranker_stamp(profile)
    from pipeline.textbuild import text_stamp

    return text_stamp(name, model.dataset().files, settings_for(name, profile))


def splits_for(name: str, profile: str = "full") -> Splits:
    """The train / validation / test splits a build of ``name`` with ``profile`` uses."""
    settings = settings_for(name, profile)
    dataset = entry(name).dataset()
    return split_as_built(dataset.texts, dataset.targets, settings)


def _has_artifact(path: Path) -> bool:
    """A file artifact (model.onnx, model.plan), or a Hugging Face folder with its config."""
    return path.is_file() or (path.is_dir() and (path / "config.json").is_file())


def _text_model_built(model_dir: Path) -> bool:
    versions, artifact = _served_versions(model_dir) if (model_dir / "config.yaml").is_file() else ([], "")
    return bool(versions) and all(
        _has_artifact(model_dir / str(v) / artifact) and (model_dir / str(v) / "tokenizer.json").is_file()
        for v in versions
    )


def missing_models(repository: Path, names: Sequence[str] | None = None) -> list[str]:
    """Default models (or ``names``) whose served version's artifacts are not on disk."""
    missing = []
    for name in names or DEFAULT_MODELS:
        model_dir = Path(repository) / name
        if entry(name).kind == "ranker":
            from pipeline.ranker.build import is_built

            built = is_built(model_dir)
        else:
            built = _text_model_built(model_dir)
        if not built:
            missing.append(name)
    return missing


def build(
    names: Sequence[str] | None,
    repository: Path,
    *,
    profile: str = "full",
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Build ``names`` (default: all default models) into ``repository``; returns model folders.

    A model whose stamp (data bytes + settings + pipeline code) matches and whose served
    artifacts exist is skipped unless ``force``. Raises :class:`BuildError` for an unknown model
    or profile and for missing or corrupt data files.
    """
    from tqdm import tqdm

    chosen = list(names or DEFAULT_MODELS)
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        raise BuildError(
            f"unknown model(s) {', '.join(unknown)}; the default models are {', '.join(DEFAULT_MODELS)}"
        )
    plans = [(entry(n), entry(n).recipe(profile)) for n in chosen]
    repository = Path(repository)
    written = []
    estimates = {m.name: estimate_seconds(repository / m.name, m.name, profile) for m, _ in plans}
    # The bar counts estimated seconds of work, so its ETA is the time left for the whole build.
    overall = tqdm(
        total=round(sum(sum(e.values()) for e in estimates.values())),
        desc="sluice build",
        unit="s",
        disable=not progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining} left]",
    )
    try:
        for model, _recipe in plans:
            overall.set_description(f"sluice build: {model.name}")
            if model.kind == "ranker":
                from pipeline.ranker.build import build_ranker

                written.append(build_ranker(repository / model.name, profile, force))
                overall.update(round(sum(estimates[model.name].values())))
                continue
            from pipeline.textbuild import build_text_model

            written.append(
                build_text_model(
                    model,
                    settings_for(model.name, profile),
                    repository / model.name,
                    force,
                    progress,
                    overall,
                    estimates[model.name],
                    _text_model_built,
                )
            )
    finally:
        overall.close()
    return written
