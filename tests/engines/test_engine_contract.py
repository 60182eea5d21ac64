"""The contract every backend keeps, run on each one available here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.backend import BackendEngine
from engines.base import Engine
from engines.errors import InferenceError
from engines.tokenization import TextEncoder
from engines.warmup import SHORT_SEQUENCE, timed_warmup
from tests.support import SAMPLE_TEXTS as TEXTS
from tests.support import TINY_LABELS, TINY_MAX_BATCH, TINY_MAX_LENGTH


@pytest.fixture(scope="module")
def encoder(tiny_repository: Path) -> TextEncoder:
    return TextEncoder.from_dir(tiny_repository / "tiny-sentiment" / "1", TINY_MAX_LENGTH)


def test_is_an_engine(engine: Engine) -> None:
    assert isinstance(engine, Engine)
    # Built-in backends share the closed/missing-input checks and the warm-up loop.
    assert isinstance(engine, BackendEngine)


def test_describes_text_inputs_and_logits(engine: Engine) -> None:
    inputs = {t.name: t for t in engine.inputs}
    assert {"input_ids", "attention_mask"} <= set(inputs)
    for spec in inputs.values():
        assert spec.datatype == "INT64"
        assert spec.shape == (-1, -1)
    [logits] = engine.outputs
    assert (logits.name, logits.datatype, logits.shape) == ("logits", "FP32", (-1, len(TINY_LABELS)))


@pytest.mark.parametrize("rows", [1, 3, TINY_MAX_BATCH])
def test_run_returns_one_row_per_input_row(
    engine: Engine, encoder: TextEncoder, rows: int
) -> None:
    batch = encoder.encode([TEXTS[i % len(TEXTS)] for i in range(rows)])
    out = engine.run(batch.as_inputs())
    assert set(out) == {t.name for t in engine.outputs}
    assert out["logits"].shape == (rows, len(TINY_LABELS))
    assert out["logits"].dtype == np.float32
    assert np.isfinite(out["logits"]).all()


def test_run_ignores_inputs_the_model_does_not_declare(
    engine: Engine, encoder: TextEncoder
) -> None:
    feeds = encoder.encode(TEXTS).as_inputs()
    plain = engine.run(feeds)["logits"]
    extra = engine.run({**feeds, "not_an_input": np.zeros((2, 2))})["logits"]
    np.testing.assert_array_equal(plain, extra)


def test_run_casts_inputs_to_the_declared_dtype(engine: Engine, encoder: TextEncoder) -> None:
    feeds = encoder.encode(TEXTS).as_inputs()
    as_int32 = {name: a.astype(np.int32) for name, a in feeds.items()}
    np.testing.assert_allclose(
        engine.run(as_int32)["logits"], engine.run(feeds)["logits"], atol=1e-6
    )


def test_missing_input_is_an_inference_error(engine: Engine, encoder: TextEncoder) -> None:
    feeds = encoder.encode(TEXTS).as_inputs()
    del feeds["attention_mask"]
    with pytest.raises(InferenceError, match="attention_mask"):
        engine.run(feeds)


def test_warmup_then_run(engine: Engine, encoder: TextEncoder) -> None:
    engine.warmup()
    assert engine.run(encoder.encode(TEXTS).as_inputs())["logits"].shape[0] == len(TEXTS)


def test_timed_warmup_reports_each_warmup_shape_and_its_time(engine: Engine) -> None:
    engine.warmup()
    timings = timed_warmup(engine, TINY_MAX_BATCH, TINY_MAX_LENGTH)
    shapes = [(items, tokens) for items, tokens, _ in timings]
    assert shapes == [(rows, rows * seq) for seq in (SHORT_SEQUENCE, TINY_MAX_LENGTH)
                      for rows in (1, TINY_MAX_BATCH)]
    assert all(seconds > 0 for _, _, seconds in timings)


def test_close_is_idempotent_and_stops_run(engine: Engine, encoder: TextEncoder) -> None:
    feeds = encoder.encode(TEXTS).as_inputs()
    engine.close()
    engine.close()
    with pytest.raises(InferenceError, match="closed"):
        engine.run(feeds)


def test_padding_to_the_batch_longest_changes_no_logits(
    engine: Engine, encoder: TextEncoder
) -> None:
    together = engine.run(encoder.encode(TEXTS).as_inputs())["logits"]
    for i, text in enumerate(TEXTS):
        alone = engine.run(encoder.encode([text]).as_inputs())["logits"]
        np.testing.assert_allclose(alone[0], together[i], atol=1e-4, err_msg=repr(text))


def test_different_texts_get_different_logits(engine: Engine, encoder: TextEncoder) -> None:
    """Guards the two tests above: a model whose logits ignore the text would pass them."""
    logits = engine.run(encoder.encode(TEXTS).as_inputs())["logits"]
    assert np.abs(logits[0] - logits[1]).max() > 1e-2
