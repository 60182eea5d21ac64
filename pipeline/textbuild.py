"""Build one text model: data -> teacher -> student -> ONNX -> int8 / fp16 -> evaluate -> cards.

Versions written (all ``onnxruntime``, sharing the tokenizer files): 1 teacher fp32 (fused
graph), 2 teacher int8, 3 student fp32, 4 student int8, 5 student fp16 (GPU), 6 student int8
and 7 teacher int8 with fixed (calibrated) activation scales, batch-invariant. Intermediate
artifacts (Hugging Face folders, unfused exports, the cache stamp) live in ``<model>/build/``,
which is git-ignored like the version folders.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.catalogue import ModelEntry
from pipeline.choice import (
    FIXED_FROM,
    STUDENT_FP16,
    STUDENT_FP32,
    STUDENT_INT8,
    TEACHER_FP32,
    TEACHER_INT8,
    VARIANTS,
)
from pipeline.settings import BuildSettings
from pipeline.split import split_as_built
from pipeline.stamp import build_stamp, read_stamp

log = logging.getLogger("sluice.pipeline")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
STAMP_FILE = "build/stamp.json"
STAGES = ("data", "teacher", "student", "export", "quantize", "evaluate", "write")


@dataclass
class Run:
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
        self.bar.update(round(self.estimates.get(stage, 0)))


def text_stamp(name: str, files: Sequence[Path], settings: BuildSettings) -> str:
    """The build stamp of a text model's recipe: its data ``files``' bytes, ``settings`` and the
    weight-shaping code."""
    return build_stamp(files, {"model": name, **settings.as_dict()})


def build_text_model(
    model: ModelEntry,
    settings: BuildSettings,
    model_dir: Path,
    force: bool,
    progress: bool,
    bar: Any,
    estimates: dict[str, float],
    is_built: Callable[[Path], bool],
) -> Path:
    """Build ``model`` into ``model_dir`` unless its stamp matches and ``is_built(model_dir)``."""
    name = model.name
    dataset = model.dataset()
    stamp = text_stamp(name, dataset.files, settings)
    if not force and read_stamp(model_dir / STAMP_FILE) == stamp and is_built(model_dir):
        log.info("%s: up to date (stamp %s), skipping", name, stamp[:12])
        bar.update(round(sum(estimates.values())))
        return model_dir
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    run = Run(name, bar, estimates)
    work = model_dir / "build"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for old in model_dir.iterdir():
        if old.is_dir() and old.name.isdigit():
            shutil.rmtree(old)

    from pipeline import textcard as tc
    from pipeline import train as tr

    card: dict[str, Any] = {"name": name, "labels": list(dataset.labels)}
    base_dir = tr.base_model_dir()
    with run.stage("data"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
        parts = split_as_built(dataset.texts, dataset.targets, settings)
        max_length, p995, longest = tr.max_length_for(tokenizer, parts.train.texts, settings.max_length_cap)
        train = tr.encode(tokenizer, parts.train, max_length)
        validation = tr.encode(tokenizer, parts.validation, max_length)
        card["data"] = tc.data_summary(dataset, parts, p995, longest)
        card["max_length"] = max_length
    with run.stage("teacher"):
        teacher_result = tr.fine_tune_teacher(
            base_dir, dataset.labels, tokenizer, train, validation, settings, work / "hf-teacher",
            progress=progress,
        )  # fmt: skip
    with run.stage("student"):
        student_result = tr.distil_student(
            work / "hf-teacher", tokenizer, train, validation, settings, work / "hf-student",
            progress=progress,
        )  # fmt: skip
    trained = {"teacher": teacher_result, "student": student_result}

    from pipeline import variants as vr
    from pipeline.export import export_onnx
    from pipeline.fixed_scales import fix_activation_scales

    files = {v: model_dir / str(v) / "model.onnx" for v in VARIANTS}
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
        calibration = _calibration_batches(files[TEACHER_FP32], parts, max_length, settings)
        for fixed, dynamic in FIXED_FROM.items():
            fix_activation_scales(files[dynamic], files[fixed], calibration)
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
                drift_texts=settings.drift_texts,
                drift_rounds=settings.drift_rounds,
            )
            if version == TEACHER_FP32:
                teacher_preds = preds
            results[version] = m
            log.info("%s v%d: %s", name, version, m.as_dict())
        notes, speed_notes = list(dataset.notes), []
        if settings.try_static_int8:
            note, speed_note = _try_static(files, work, results, parts, max_length, dataset, teacher_preds,
                                           settings)  # fmt: skip
            notes.append(note)
            speed_notes.append(speed_note)
    with run.stage("write"):
        card, measured = tc.card_and_measured(model, card, settings, results, trained, notes)
        measured.update(tc.provenance(stamp, speed_notes), profile=settings.profile)
        measured["timings_s"] = {k: round(v, 1) for k, v in run.timings.items()}
        measured["build_seconds"] = round(time.perf_counter() - started, 1)
        tc.write(model_dir, model, card, measured, rewrite=force)
        (model_dir / STAMP_FILE).write_text(f'{{"stamp": "{stamp}"}}\n', encoding="utf-8")
    return model_dir


def _shape(hf_dir: Path) -> tuple[int, int]:
    import json

    config = json.loads((hf_dir / "config.json").read_text())
    return int(config["num_attention_heads"]), int(config["hidden_size"])


def _copy_tokenizer(primary: Path, fallback: Path, dst: Path) -> None:
    for fname in TOKENIZER_FILES:
        src = primary / fname if (primary / fname).is_file() else fallback / fname
        if src.is_file():
            shutil.copy2(src, dst / fname)


def _calibration_batches(
    model: Path, parts: Any, max_length: int, settings: BuildSettings
) -> list[dict[str, Any]]:
    """The first ``calibration_texts`` validation texts as model inputs, in batches of 32."""
    from pipeline.evaluate import TextBatcher, session

    names = [i.name for i in session(model).get_inputs()]
    batcher = TextBatcher(model.parent / "tokenizer.json", max_length, names)
    texts = parts.validation.texts[: settings.calibration_texts]
    return [batcher(texts[i : i + 32]) for i in range(0, len(texts), 32)]


def _try_static(
    files: dict[int, Path],
    work: Path,
    results: dict[int, Any],
    parts: Any,
    max_length: int,
    dataset: Any,
    teacher_preds: list[int] | None,
    settings: BuildSettings,
) -> tuple[str, str]:
    """Static int8 of the teacher; replaces version 2 only if it beats dynamic int8. Returns the
    card's note (quality and the verdict) and this machine's (speeds)."""
    from pipeline import variants as vr
    from pipeline.evaluate import measure

    dst = work / "teacher-static-int8.onnx"
    try:
        batches = _calibration_batches(files[TEACHER_FP32], parts, max_length, settings)
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
            drift_texts=settings.drift_texts,
            drift_rounds=settings.drift_rounds,
        )
    except Exception as e:  # the static path is an experiment; its failure is reported, not fatal
        log.warning("static int8 failed: %s", e)
        failed = f"Static int8 (calibrated on validation texts) failed to build: {e!r:.200}."
        return failed, failed
    dyn = results[TEACHER_INT8]
    summary = (
        f"Static int8 of the teacher (QDQ, MatMul weights and inputs, calibrated on "
        f"{settings.calibration_texts} validation texts): accuracy {m.accuracy:.3f} against "
        f"dynamic int8's {dyn.accuracy:.3f}"
    )
    speeds = (
        f"static int8 of the teacher: {m.throughput_batch32:.0f} texts/s at batch 32, against dynamic "
        f"int8's {dyn.throughput_batch32:.0f} texts/s"
    )
    if m.accuracy >= dyn.accuracy - 0.002 and m.throughput_batch32 > dyn.throughput_batch32:
        shutil.copy2(dst, files[TEACHER_INT8])
        results[TEACHER_INT8] = m
        return summary + ": it is as accurate and faster, so version 2 is the static one.", speeds
    return summary + ": it does not beat dynamic, so version 2 stays dynamic.", speeds
