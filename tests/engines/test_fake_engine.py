"""The fake engine the scheduler tests rely on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engines.base import Engine
from tests.support.fake_engine import FakeEngine, fake_logits

BATCH = {
    "input_ids": np.array([[101, 5, 102, 0], [101, 7, 8, 102]]),
    "attention_mask": np.array([[1, 1, 1, 0], [1, 1, 1, 1]]),
}


def test_is_an_engine_with_row_dependent_deterministic_logits() -> None:
    engine = FakeEngine()
    assert isinstance(engine, Engine)
    logits = engine.run(BATCH)["logits"]
    assert logits.tolist() == [[208, 3, 101], [218, 4, 101]]
    np.testing.assert_array_equal(logits, fake_logits(BATCH))
    assert engine.batches == [{"input_ids": (2, 4), "attention_mask": (2, 4)}]


def test_num_labels_sets_the_width() -> None:
    assert FakeEngine(num_labels=2).run(BATCH)["logits"].shape == (2, 2)
    assert FakeEngine(num_labels=5).run(BATCH)["logits"][:, 3:].tolist() == [[0, 0], [0, 0]]


def test_gate_holds_run_until_set() -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    results: list[dict[str, np.ndarray]] = []
    worker = threading.Thread(target=lambda: results.append(engine.run(BATCH)))
    worker.start()
    assert engine.entered.wait(timeout=10)
    assert results == []  # entered, and held at the gate
    gate.set()
    worker.join(timeout=10)
    assert len(results) == 1


def test_failure_and_wrong_count() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        FakeEngine(fail_with=RuntimeError("boom")).run(BATCH)
    assert FakeEngine(wrong_count=True).run(BATCH)["logits"].shape[0] == 1


def test_warmup_and_close_are_recorded() -> None:
    engine = FakeEngine()
    engine.warmup()
    engine.close()
    engine.close()
    assert (engine.warmups, engine.closed) == (1, True)
