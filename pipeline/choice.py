"""The text model's versions, which one serves, and the targets its card checks.

Quality (accuracy, agreement) is what a rebuild reproduces, so it goes into the committed card;
speed depends on the machine that builds, so speed targets and ratios go to ``measured.json``
(git-ignored, next to the weights).
"""

from __future__ import annotations

from typing import Any

from pipeline.catalogue import entry

TEACHER_FP32, TEACHER_INT8, STUDENT_FP32, STUDENT_INT8, STUDENT_FP16 = 1, 2, 3, 4, 5
STUDENT_INT8_FIXED, TEACHER_INT8_FIXED = 6, 7

VARIANTS = {
    TEACHER_FP32: ("teacher", "fp32"),
    TEACHER_INT8: ("teacher", "int8"),
    STUDENT_FP32: ("student", "fp32"),
    STUDENT_INT8: ("student", "int8"),
    STUDENT_FP16: ("student", "fp16"),
    STUDENT_INT8_FIXED: ("student", "int8-fixed"),
    TEACHER_INT8_FIXED: ("teacher", "int8-fixed"),
}
"""Version -> (network, precision). ``int8`` is ONNX Runtime's dynamic quantization (activation
scales per tensor, so per batch); ``int8-fixed`` the same graph with calibrated, constant
activation scales (pipeline/fixed_scales.py): batch-invariant."""

#: The dynamic int8 version each fixed-scale one is made from.
FIXED_FROM = {STUDENT_INT8_FIXED: STUDENT_INT8, TEACHER_INT8_FIXED: TEACHER_INT8}
#: A served variant's answers may move by at most this much with its batch-mates (any class
#: probability, against the text run alone).
MAX_DRIFT = 0.01
#: Fixed scales may cost at most this much accuracy against the dynamic int8 they replace.
FIXED_ACCURACY_BUDGET = 0.005


def engine_precision(version: int) -> str:
    """The precision ``config.yaml``'s engine declares (``int8-fixed`` runs as ``int8``)."""
    return VARIANTS[version][1].split("-")[0]


def _int8_choice(results: dict[int, Any]) -> tuple[int, str]:
    """Student or teacher (dynamic int8 version): the student's if the student (fp32 and int8)
    stays within 2 points of the fp32 teacher and is faster than the teacher's int8."""
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


def fixed_is_fit(results: dict[int, Any], fixed: int) -> bool:
    """The fixed-scale variant is batch-invariant (within :data:`MAX_DRIFT`) and within
    :data:`FIXED_ACCURACY_BUDGET` of the dynamic int8 it is made from."""
    if fixed not in results:
        return False
    f, dynamic = results[fixed], results[FIXED_FROM[fixed]]
    drift = f.batch_drift_max
    return drift is not None and drift <= MAX_DRIFT and f.accuracy >= dynamic.accuracy - FIXED_ACCURACY_BUDGET


def choose_default(results: dict[int, Any]) -> tuple[int, str]:
    """int8 on a CPU: student or teacher as :func:`_int8_choice` says, with fixed activation
    scales where :func:`fixed_is_fit` (answers independent of batch-mates), else dynamic.

    The reason names no speed ratio (it would vary from machine to machine; ``measured.json``
    holds this machine's, and the speed target of the fixed-scale variant)."""
    dynamic, reason = _int8_choice(results)
    fixed = next(f for f, d in FIXED_FROM.items() if d == dynamic)
    if fixed_is_fit(results, fixed):
        f, d = results[fixed], results[dynamic]
        return fixed, (
            f"{reason}; with fixed activation scales (version {fixed}), so an answer does not "
            f"depend on its batch-mates (largest probability change {f.batch_drift_max:.4f}, "
            f"against {d.batch_drift_max:.4f} for dynamic int8), accuracy "
            f"{100 * (f.accuracy - d.accuracy):+.1f} points against dynamic int8"
        )
    if fixed in results:
        return dynamic, (
            f"{reason}; with dynamic scales (version {fixed}, fixed scales, misses the drift or "
            "accuracy budget)"
        )
    return dynamic, reason


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
    served = choose_default(results)[0]
    drift = results[served].batch_drift_max
    if drift is not None:
        rows.append(_row(
            f"served version's answers independent of batch-mates within {MAX_DRIFT}",
            drift <= MAX_DRIFT,
            f"version {served}: largest probability change {drift:.4f}",
        ))  # fmt: skip
    for fixed, dynamic in FIXED_FROM.items():
        if fixed in results:
            f, d = results[fixed], results[dynamic]
            rows.append(_row(
                f"{VARIANTS[fixed][0]} int8-fixed within {100 * FIXED_ACCURACY_BUDGET:.1f} point "
                "of dynamic int8",
                f.accuracy >= d.accuracy - FIXED_ACCURACY_BUDGET,
                f"{100 * (d.accuracy - f.accuracy):+.1f} points",
            ))  # fmt: skip
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
        *(
            _row(
                f"{VARIANTS[f][0]} int8-fixed at least 0.85x dynamic int8's CPU throughput at batch 32",
                results[f].throughput_batch32 >= 0.85 * results[d].throughput_batch32,
                f"{results[f].throughput_batch32 / results[d].throughput_batch32:.2f}x",
            )
            for f, d in FIXED_FROM.items()
            if f in results
        ),
    ]
