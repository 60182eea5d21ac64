"""The text model's versions, which one serves, and the targets its card checks.

Quality (accuracy, agreement) is what a rebuild reproduces, so it goes into the committed card;
speed depends on the machine that builds, so speed targets and ratios go to ``measured.json``
(git-ignored, next to the weights).
"""

from __future__ import annotations

from typing import Any

from pipeline.catalogue import entry

TEACHER_FP32, TEACHER_INT8, STUDENT_FP32, STUDENT_INT8, STUDENT_FP16 = 1, 2, 3, 4, 5

VARIANTS = {
    TEACHER_FP32: ("teacher", "fp32"),
    TEACHER_INT8: ("teacher", "int8"),
    STUDENT_FP32: ("student", "fp32"),
    STUDENT_INT8: ("student", "int8"),
    STUDENT_FP16: ("student", "fp16"),
}


def choose_default(results: dict[int, Any]) -> tuple[int, str]:
    """int8 on a CPU: the student's if the student (fp32 and int8) stays within 2 points of the
    fp32 teacher and is faster than the teacher's int8; else the teacher's int8.

    The reason names no speed ratio (it would vary from machine to machine; ``measured.json``
    holds this machine's)."""
    teacher, student, student_int8 = (results[v] for v in (TEACHER_FP32, STUDENT_FP32, STUDENT_INT8))
    gap = 100 * (teacher.accuracy - min(student.accuracy, student_int8.accuracy))
    if gap <= 2.0 and student_int8.throughput_batch32 > results[TEACHER_INT8].throughput_batch32:
        return STUDENT_INT8, (
            f"student int8: at most {gap:.1f} points below the fp32 teacher, within the 2-point "
            "distillation budget, and faster on a CPU than the teacher's int8 (half its layers)"
        )
    return TEACHER_INT8, (
        f"teacher int8: the student is {gap:.1f} points below the fp32 teacher, over the 2-point "
        "budget (or not faster than it), so the teacher's int8 serves"
    )


def _row(target: str, ok: bool, detail: str) -> dict[str, str]:
    return {"target": target, "result": "met" if ok else "NOT met", "detail": detail}


def quality_targets(name: str, results: dict[int, Any]) -> list[dict[str, str]]:
    """The accuracy targets: reproduced by a rebuild, so they go into the committed card."""
    t, ti, s = (results[v] for v in (TEACHER_FP32, TEACHER_INT8, STUDENT_FP32))
    rows = [
        _row(
            "teacher int8 within 1.0 point of the fp32 teacher",
            ti.accuracy >= t.accuracy - 0.01,
            f"{100 * (t.accuracy - ti.accuracy):+.1f} points",
        ),
        _row(
            "student within 2.0 points of the teacher",
            s.accuracy >= t.accuracy - 0.02,
            f"{100 * (t.accuracy - s.accuracy):+.1f} points",
        ),
    ]
    model = entry(name)
    if model.accuracy_target is not None:
        ok = t.accuracy >= model.accuracy_target
        note = "" if ok or model.tuning_note is None else f"; {model.tuning_note}"
        rows.append(
            _row(f"teacher test accuracy at least {model.accuracy_target:.2f}", ok, f"{t.accuracy:.3f}{note}")
        )
    return rows


def speed_targets(results: dict[int, Any]) -> list[dict[str, str]]:
    """The CPU-throughput targets: this machine's, so they go to ``measured.json``."""
    t, ti, s, si = (results[v] for v in (TEACHER_FP32, TEACHER_INT8, STUDENT_FP32, STUDENT_INT8))
    return [
        _row(
            "teacher int8 at least 2x the fp32 teacher's CPU throughput at batch 32",
            ti.throughput_batch32 >= 2 * t.throughput_batch32,
            f"{ti.throughput_batch32 / t.throughput_batch32:.2f}x",
        ),
        _row(
            "student at least 1.8x faster than the teacher, fp32 ONNX",
            s.throughput_batch32 >= 1.8 * t.throughput_batch32,
            f"{s.throughput_batch32 / t.throughput_batch32:.2f}x",
        ),
        _row(
            "student at least 1.8x faster than the teacher, int8 ONNX",
            si.throughput_batch32 >= 1.8 * ti.throughput_batch32,
            f"{si.throughput_batch32 / ti.throughput_batch32:.2f}x",
        ),
    ]
