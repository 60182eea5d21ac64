"""The text handler: length-sorted sub-batches give the same answers with less padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineSpec
from engines.length_batching import sub_batches
from engines.registry import load_engine
from engines.tokenization import TextEncoder
from server.inference.text import TextClassificationHandler

TEXTS = [
    "ok",
    "my flight was cancelled and nobody at the gate could tell me why, again, third time",
    "thanks",
    "lost bag at the airport",
    "the crew on flight 221 were wonderful and the seats were comfortable, best trip in years",
    "delayed",
    "is there wifi on the early flight to Denver tomorrow?",
]


def test_sub_batches_cover_every_row_once_within_the_budget() -> None:
    lengths = np.array([5, 40, 7, 12, 44, 3, 20])
    calls = sub_batches(lengths, 60)
    rows = np.concatenate([r for r, _ in calls])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for r, width in calls:
        assert width == lengths[r].max()
        assert len(r) == 1 or len(r) * width <= 60
    padded = sum(len(r) * w for r, w in calls)
    assert padded < len(lengths) * lengths.max()


def test_sub_batches_off_or_small_is_one_call() -> None:
    lengths = np.array([5, 9, 7])
    assert len(sub_batches(lengths, 0)) == 1
    assert len(sub_batches(lengths, 1000)) == 1
    assert [len(r) for r, _ in sub_batches(np.array([50, 60]), 10)] == [1, 1]


@pytest.fixture(scope="module")
def handlers(tiny_repository: Path) -> tuple[TextClassificationHandler, TextClassificationHandler]:
    version = tiny_repository / "tiny-sentiment" / "1"
    engine = load_engine("onnxruntime", EngineSpec(artifact=version / "model.onnx", threads=1))
    encoder = TextEncoder.from_dir(version, 64)
    return (TextClassificationHandler(encoder, [engine], 3),
            TextClassificationHandler(encoder, [engine], 3, sub_batch_tokens=48))


def test_split_batch_answers_like_one_call_with_less_padding(
    handlers: tuple[TextClassificationHandler, TextClassificationHandler],
) -> None:
    whole, split = handlers
    payloads = [tuple(TEXTS[:2]), (TEXTS[2],), tuple(TEXTS[3:])]
    a, b = whole.prepare(payloads), split.prepare(payloads)
    assert a.real_tokens == b.real_tokens
    assert b.padded_tokens < a.padded_tokens
    assert len(b.data[0].calls) > 1  # really split into several engine calls
    for x, y in zip(whole.execute(a, 0), split.execute(b, 0), strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_texts_are_cut_to_the_character_budget_or_refused_when_strict() -> None:
    from server.errors import InvalidInput
    from server.inference.text import clip_texts

    assert clip_texts(["abcdef", "ab"], 4, False, "inputs") == ("abcd", "ab")
    assert clip_texts(["ab"], 4, True, "inputs") == ("ab",)
    with pytest.raises(InvalidInput, match=r"inputs.data\[1\]: 6 characters; .* at most 4"):
        clip_texts(["ab", "abcdef"], 4, True, "inputs")
