"""The served version: the batch-invariant int8 where it is within the drift and accuracy
budgets, the dynamic int8 otherwise; the card's targets say which held."""

from __future__ import annotations

from dataclasses import replace

from pipeline.choice import (
    STUDENT_INT8,
    STUDENT_INT8_FIXED,
    TEACHER_INT8,
    TEACHER_INT8_FIXED,
    choose_default,
    engine_precision,
    quality_targets,
)
from pipeline.evaluate import Measurement


def _m(accuracy: float, speed: float, drift: float | None) -> Measurement:
    return Measurement(accuracy, accuracy, 1.0, 10.0, 1.0, speed, drift, drift)


def _results(fixed_accuracy: float = 0.85, fixed_drift: float = 0.0) -> dict[int, Measurement]:
    return {
        1: _m(0.86, 100, 0.0), 2: _m(0.855, 250, 0.09), 3: _m(0.85, 200, 0.0),
        4: _m(0.85, 500, 0.1), 5: _m(0.85, 50, 0.0),
        STUDENT_INT8_FIXED: _m(fixed_accuracy, 500, fixed_drift), TEACHER_INT8_FIXED: _m(0.855, 250, 0.0),
    }  # fmt: skip


def test_the_fixed_scale_student_serves_when_invariant_and_as_accurate() -> None:
    version, reason = choose_default(_results())
    assert version == STUDENT_INT8_FIXED and engine_precision(version) == "int8"
    assert "batch-mates" in reason and "0.1000" in reason
    rows = {r["target"]: r["result"] for r in quality_targets("airline-sentiment", _results())}
    assert rows["served version's answers independent of batch-mates within 0.01"] == "met"


def test_dynamic_int8_serves_when_the_fixed_one_drifts_or_loses_accuracy() -> None:
    assert choose_default(_results(fixed_drift=0.02))[0] == STUDENT_INT8
    version, reason = choose_default(_results(fixed_accuracy=0.84))
    assert version == STUDENT_INT8 and "misses" in reason
    rows = {r["target"]: r["result"] for r in quality_targets("airline-sentiment", _results(0.84))}
    assert rows["served version's answers independent of batch-mates within 0.01"] == "NOT met"
    assert rows["student int8-fixed within 0.5 point of dynamic int8"] == "NOT met"


def test_the_teacher_side_gets_its_own_fixed_variant() -> None:
    results = _results()
    results[3] = replace(results[3], accuracy=0.80)  # student over the distillation budget
    assert choose_default(results)[0] == TEACHER_INT8_FIXED
    del results[TEACHER_INT8_FIXED]  # an old card without the fixed variants
    assert choose_default(results)[0] == TEACHER_INT8
