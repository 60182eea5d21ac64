"""A text model's card and config: the committed part (what a rebuild reproduces) and
``measured.json`` (this machine's speeds and timings), both from one build's results."""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.card import SPEED_METRICS, read_measured, render_markdown, write_model_files
from pipeline.catalogue import ModelEntry, entry
from pipeline.choice import (
    TEACHER_FP32,
    VARIANTS,
    choose_default,
    engine_precision,
    quality_targets,
    speed_targets,
)
from pipeline.errors import BuildError
from pipeline.settings import BuildSettings
from pipeline.stamp import code_version


def data_summary(dataset: Any, parts: Any, p995: int, longest: int) -> dict[str, Any]:
    counts = Counter(parts.test.targets)
    return {
        "origin": dataset.origin,
        "licence": dataset.licence,
        "raw": len(dataset.texts),
        "duplicates_removed": parts.duplicates_removed,
        "conflicts_removed": parts.conflicts_removed,
        "train": len(parts.train),
        "validation": len(parts.validation),
        "test": len(parts.test),
        "test_class_counts": {dataset.labels[k]: counts[k] for k in sorted(counts)},
        "token_length_p995": p995,
        "token_length_max": longest,
    }


def _describe(result: Any) -> str:
    how = "stopped early" if result.stopped_early else "ran all epochs"
    return f"best validation macro-F1 {result.best_validation_f1:.3f}, {result.steps} steps, {how}"


def card_and_measured(
    model: ModelEntry,
    card: dict[str, Any],
    settings: BuildSettings,
    results: dict[int, Any],
    trained: dict[str, Any],
    notes: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The committed card (quality, data, settings, choice) and this machine's measurements."""
    import onnxruntime

    default, reason = choose_default(results)
    card = {
        **card,
        "training": {k: _describe(r) for k, r in trained.items()},
        "training_raw": {
            k: {f: v for f, v in r.__dict__.items() if f != "seconds"} for k, r in trained.items()
        },
        "description": model.description,
        "default_version": default,
        "default_reason": reason,
        "variants": [
            {
                "version": v,
                "name": VARIANTS[v][0],
                "precision": VARIANTS[v][1],
                "metrics": {k: x for k, x in results[v].as_dict().items() if k not in SPEED_METRICS},
            }
            for v in sorted(results)
        ],
        "targets": quality_targets(model.name, results),
        "settings": settings.as_dict(),
        "notes": notes,
        "environment": {"onnxruntime": onnxruntime.__version__},
    }
    seconds = {k: round(r.seconds, 1) for k, r in trained.items()}
    return card, {"name": model.name, **speeds(results), "training_seconds": seconds}


def speeds(results: dict[int, Any]) -> dict[str, Any]:
    """Each variant's CPU speed on this machine, and the speed targets."""
    base = results[TEACHER_FP32].throughput_batch32
    return {
        "variants": [
            {
                "version": v,
                **{k: x for k, x in results[v].as_dict().items() if k in SPEED_METRICS},
                "speed_vs_teacher_fp32": round(results[v].throughput_batch32 / base, 2),
            }
            for v in sorted(results)
        ],
        "speed_targets": speed_targets(results),
    }


def provenance(stamp: str, notes: list[str]) -> dict[str, Any]:
    import onnxruntime

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {
        "stamp": stamp,
        "code_version": code_version(),
        "environment": {
            "onnxruntime": onnxruntime.__version__,
            "machine": f"{platform.machine()}, {cores} CPU cores",
        },
        "notes": notes,
    }


#: The batching token budget every text model is served with.
MAX_BATCH_TOKENS = 4096


#: Models of at most this many tokens are served with :data:`SHORT_TEXT_BATCH` rows a batch.
SHORT_TEXT_MAX_LENGTH = 32
SHORT_TEXT_BATCH = 128


def batch_rows(max_length: int) -> int:
    """``max_batch_size`` (texts) for a model of ``max_length`` tokens: 128 for short-text models,
    else 32. Measured on 2 cores with requests of 16 to 64 texts (loadtests/RESULTS.md): with 32
    rows such a request is a batch of its own; for home-intent (16 tokens), whose compute per text
    is small next to the cost of a batch, 128 rows took c=32 from 3182-3332 to 4065-4068 texts/s
    (chat unchanged); for airline (56 tokens), compute-bound, 64 and 128 rows gained nothing and
    put p99 up by 16% and 35%."""
    return SHORT_TEXT_BATCH if max_length <= SHORT_TEXT_MAX_LENGTH else 32


def text_config(
    name: str, labels: tuple[str, ...] | list[str], max_length: int, default: int
) -> dict[str, Any]:
    return {
        "name": name,
        "task": "text-classification",
        "description": entry(name).description,
        "labels": list(labels),
        "max_length": max_length,
        "max_inputs_per_request": 64,
        "engine": {"backend": "onnxruntime", "device": "cpu", "precision": engine_precision(default)},
        # CPU serving: no queue delay (a batch forms from what queued while the engine was
        # busy; waiting only adds latency when compute grows with batch size). How a formed
        # batch is cut into engine calls, and the instance/thread split, are left to the
        # server's measured cost model (no sub_batch_tokens or instance_count pinned here).
        "batching": {
            "max_batch_size": batch_rows(max_length),
            "max_queue_delay_us": 0,
            "max_batch_tokens": MAX_BATCH_TOKENS,
            "max_queue_size": 8192,
        },
        "version_policy": {"specific": {"versions": [default]}},
    }


def write(model_dir: Path, model: ModelEntry, card: dict[str, Any], measured: dict[str, Any],
          *, rewrite: bool = False) -> bool:
    config = text_config(model.name, card["labels"], card["max_length"], card["default_version"])
    return write_model_files(model_dir, config, card, render_markdown(card), measured, rewrite=rewrite)


def refresh_card(model_dir: Path) -> None:
    """Re-derive the default version, targets, ``config.yaml`` and ``MODEL_CARD.md`` from
    ``model_card.json`` and this machine's ``measured.json`` (after a change to the choice rule
    or the card template; no rebuild)."""
    from pipeline.evaluate import Measurement

    card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
    measured = read_measured(model_dir)
    if measured is None:
        raise BuildError(f"{model_dir}: no measured.json (the speeds the choice needs): build it here first")
    speed = {int(v["version"]): v for v in measured["variants"]}
    results = {
        int(v["version"]): Measurement(
            **v["metrics"], **{k: speed[int(v["version"])][k] for k in SPEED_METRICS}
        )
        for v in card["variants"]
    }
    default, reason = choose_default(results)
    card.update(
        default_version=default, default_reason=reason, targets=quality_targets(card["name"], results)
    )
    write(model_dir, entry(card["name"]), card, {**measured, **speeds(results)}, rewrite=True)
