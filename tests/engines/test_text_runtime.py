"""The one text runtime (encode -> arrays, run -> probabilities), its scores and its batchers."""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from engines.backend import BackendEngine
from engines.base import EngineSpec, TensorSpec
from engines.errors import InferenceError
from engines.length_batching import window_sorted
from engines.registry import load_engine
from engines.scores import best, label_names, softmax, top_k
from engines.text import TextClassifier, TextRuntime, logits_output
from engines.tokenization import TextEncoder
from tests.support.fake_engine import FakeEngine

TEXTS = ["@united lost my bag again", "thanks!", "the crew was wonderful today, thank you so much",
         "ok", "delayed three hours and nobody told us anything at all"]


@pytest.fixture(scope="module")
def encoder(tiny_repository: Path) -> TextEncoder:
    return TextEncoder.from_dir(tiny_repository / "tiny-sentiment" / "1", 64)


@pytest.fixture(scope="module")
def classifier(tiny_repository: Path, encoder: TextEncoder) -> Iterator[TextClassifier]:
    spec = EngineSpec(artifact=tiny_repository / "tiny-sentiment" / "1" / "model.onnx", threads=1)
    engine = load_engine("onnxruntime", spec)
    c = TextClassifier(TextRuntime.for_engine(encoder, engine), engine)
    yield c
    c.close()


def test_softmax_is_float32_rows_summing_to_one_and_stable_for_large_logits() -> None:
    logits = np.array([[1000.0, 1000.0, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    p = softmax(logits)
    assert p.dtype == np.float32 and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0], atol=1e-7)
    assert softmax(logits, np.float64).dtype == np.float64
    assert logits[0, 0] == 1000.0  # the input is not modified


def test_top_k_is_best_first_and_ties_keep_the_lower_index() -> None:
    scores = np.array([[0.2, 0.4, 0.4], [0.7, 0.1, 0.2]], dtype=np.float32)
    order, values = top_k(scores, 2)
    assert order.tolist() == [[1, 2], [0, 2]]
    np.testing.assert_array_equal(values, np.array([[0.4, 0.4], [0.7, 0.2]], dtype=np.float32))
    assert best(scores).tolist() == [1, 0]
    assert label_names(best(scores), ["a", "b", "c"]) == ["b", "a"]
    with pytest.raises(ValueError, match="at least 1"):
        top_k(scores, 0)


def test_window_sorted_covers_every_row_once_sorted_inside_each_window() -> None:
    lengths = np.array([5, 1, 4, 2, 3, 9, 7, 8, 6, 0, 1])
    batches = window_sorted(lengths, batch_size=2, window_batches=2)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [len(b) for b in batches] == [2, 2, 2, 2, 2, 1]
    for window in range(0, len(batches), 2):
        rows = np.concatenate(batches[window : window + 2])
        assert rows.min() >= 4 * (window // 2) and rows.max() < 4 * (window // 2 + 1)
        assert lengths[rows].tolist() == sorted(lengths[rows].tolist())
    full = window_sorted(lengths, batch_size=3, window_batches=1, full_only=True)
    assert [len(b) for b in full] == [3, 3, 3]  # the window of 2 rows gives no full batch


def test_encode_stage_output_is_plain_data_that_crosses_a_process_boundary(
    classifier: TextClassifier,
) -> None:
    encoded = classifier.encode(TEXTS)
    copy = pickle.loads(pickle.dumps(encoded))
    assert len(copy) == len(TEXTS) and copy.real_tokens == encoded.real_tokens
    np.testing.assert_array_equal(classifier.run(copy).probabilities,
                                  classifier.run(encoded).probabilities)


def test_front_door_equals_the_two_stages_and_the_engine_logits(classifier: TextClassifier) -> None:
    result = classifier.classify(TEXTS)
    assert result.probabilities.shape == (len(TEXTS), 3)
    assert result.probabilities.dtype == np.float32
    runtime = classifier.runtime
    logits = classifier.engine.run(runtime.feeds(runtime.encoder.encode(TEXTS)))["logits"]
    np.testing.assert_array_equal(result.probabilities, softmax(logits))
    assert result.labels(["neg", "neu", "pos"]) == label_names(logits.argmax(axis=1), ["neg", "neu", "pos"])
    assert 0 < result.real_tokens < result.padded_tokens


def test_sub_batching_answers_like_one_call_with_less_padding(
    classifier: TextClassifier, encoder: TextEncoder,
) -> None:
    whole = classifier.classify(TEXTS)
    runtime = TextRuntime.for_engine(encoder, classifier.engine, sub_batch_tokens=24)
    encoded = runtime.encode(TEXTS)
    assert len(encoded.calls) > 1 and encoded.padded_tokens < whole.padded_tokens
    split = runtime.run(classifier.engine, encoded)
    np.testing.assert_allclose(split.probabilities, whole.probabilities, atol=1e-5)


def test_only_declared_inputs_are_fed_and_wrong_row_counts_are_errors(encoder: TextEncoder) -> None:
    engine = FakeEngine(input_names=("input_ids",))
    runtime = TextRuntime.for_engine(encoder, engine)
    runtime.run(engine, runtime.encode(TEXTS))
    assert list(engine.batches[-1]) == ["input_ids"]
    bad = FakeEngine(wrong_count=True)
    with pytest.raises(RuntimeError, match="engine returned 4 rows for 5 texts"):
        TextClassifier(TextRuntime.for_engine(encoder, bad), bad).classify(TEXTS)
    split = TextRuntime.for_engine(encoder, bad, sub_batch_tokens=24)
    with pytest.raises(RuntimeError, match="engine returned"):
        split.run(bad, split.encode(TEXTS))


def test_logits_output_is_logits_or_the_only_output() -> None:
    assert logits_output(FakeEngine()) == "logits"

    class TwoOutputs(FakeEngine):
        @property
        def outputs(self) -> tuple[TensorSpec, ...]:
            return (TensorSpec("a", "FP32", (-1, 3)), TensorSpec("b", "FP32", (-1, 3)))

    with pytest.raises(ValueError, match="cannot tell"):
        logits_output(TwoOutputs())


class _Recording(BackendEngine):
    """The smallest backend: what BackendEngine leaves to a backend, recorded."""

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec, (TensorSpec("input_ids", "INT64", (-1, -1)),),
                         (TensorSpec("logits", "FP32", (-1, 2)),))
        self.shapes: list[tuple[int, ...]] = []
        self.released = 0

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.shapes.append(inputs["input_ids"].shape)
        return {"logits": np.zeros((inputs["input_ids"].shape[0], 2), dtype=np.float32)}

    def _release(self) -> None:
        self.released += 1


def test_backend_base_checks_inputs_warms_up_and_closes_once() -> None:
    engine = _Recording(EngineSpec(artifact=Path("unused"), max_batch_size=4, max_length=32))
    with pytest.raises(InferenceError, match=r"missing input\(s\) \['input_ids'\]"):
        engine.run({"attention_mask": np.ones((1, 2), dtype=np.int64)})
    engine.warmup()
    assert sorted(engine.shapes) == [(1, 16), (1, 32), (4, 16), (4, 32)]
    engine.close()
    engine.close()
    assert engine.released == 1 and engine.closed
    with pytest.raises(InferenceError, match="closed"):
        engine.run({"input_ids": np.ones((1, 2), dtype=np.int64)})


def test_fake_engine_plugs_in_through_the_extension_point() -> None:
    spec = EngineSpec(artifact=Path("unused"), options={"num_labels": 2, "input_names": ["input_ids"]})
    engine = load_engine("tests.support.fake_engine:load", spec, plugins=("tests.support",))
    assert isinstance(engine, FakeEngine)
    assert engine.num_labels == 2 and [t.name for t in engine.inputs] == ["input_ids"]
