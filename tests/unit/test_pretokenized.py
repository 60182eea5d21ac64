"""Texts tokenized apart (a front end's ``TokenIds``) and padded later: the same arrays and the
same answers as tokenizing the batch in the handler, without a tokenizer call in the handler."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineSpec
from engines.registry import load_engine
from engines.tokenization import EncodedBatch, TextEncoder, TokenIds
from server.cluster.tokenizers import FrontendTokenizers
from server.inference.text import TextClassificationHandler, token_cost

MAX_LENGTH = 16
TEXTS = [
    "ok",
    "my flight was cancelled and nobody at the gate could tell me why, again, third time",
    "Zürich → 東京, naïve café ☕ 🙂",
    "",
    "delayed " * 40,
]


class CountingEncoder(TextEncoder):
    """A real encoder that counts the texts it tokenizes."""

    tokenized = 0

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        self.tokenized += len(texts)
        return super().encode(texts)

    def encode_ids(self, texts: Sequence[str]) -> TokenIds:
        self.tokenized += len(texts)
        return super().encode_ids(texts)


@pytest.fixture(scope="module")
def version(tiny_repository: Path) -> Path:
    return tiny_repository / "tiny-sentiment" / "1"


@pytest.fixture(scope="module")
def encoder(version: Path) -> TextEncoder:
    return TextEncoder.from_dir(version, MAX_LENGTH)


def test_padded_token_ids_equal_the_encoded_batch(encoder: TextEncoder) -> None:
    tokens = encoder.encode_ids(TEXTS)
    assert tokens.ids.dtype == np.int32 and len(tokens) == len(TEXTS)
    assert int(tokens.lengths.max()) == MAX_LENGTH  # the long texts are truncated
    padded, direct = encoder.pad(tokens), encoder.encode(TEXTS)
    for name, array in direct.as_inputs().items():
        np.testing.assert_array_equal(padded.as_inputs()[name], array, err_msg=name)
    np.testing.assert_array_equal(padded.lengths, direct.lengths)


def test_take_and_concat_keep_each_texts_ids(encoder: TextEncoder) -> None:
    tokens = encoder.encode_ids(TEXTS)
    picked = tokens.take([4, 0, 2])
    expected = encoder.encode_ids([TEXTS[4], TEXTS[0], TEXTS[2]])
    np.testing.assert_array_equal(picked.ids, expected.ids)
    np.testing.assert_array_equal(picked.lengths, expected.lengths)
    joined = TokenIds.concat([tokens.take([0, 1]), tokens.take([2, 3, 4])])
    np.testing.assert_array_equal(joined.ids, tokens.ids)
    back = pickle.loads(pickle.dumps(tokens, protocol=5))
    np.testing.assert_array_equal(back.ids, tokens.ids)
    assert token_cost(tokens) == MAX_LENGTH


def test_handler_pads_pre_tokenized_payloads_without_tokenizing(version: Path) -> None:
    engine = load_engine("onnxruntime", EngineSpec(artifact=version / "model.onnx", threads=1))
    counting = CountingEncoder.from_dir(version, MAX_LENGTH)
    assert isinstance(counting, CountingEncoder)
    handler = TextClassificationHandler(counting, [engine], 3)
    groups = [tuple(TEXTS[:2]), tuple(TEXTS[2:])]
    from_texts = handler.execute(handler.prepare(groups), 0)
    assert counting.tokenized == len(TEXTS)

    tokens = [TextEncoder.from_dir(version, MAX_LENGTH).encode_ids(g) for g in groups]
    counting.tokenized = 0
    prepared = handler.prepare(tokens)
    assert counting.tokenized == 0  # the engine side only pads
    from_tokens = handler.execute(prepared, 0)
    for a, b in zip(from_texts, from_tokens, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    direct = handler.prepare(groups)
    assert (prepared.real_tokens, prepared.padded_tokens) == (direct.real_tokens,
                                                              direct.padded_tokens)

    counting.tokenized = 0
    mixed = handler.prepare([tokens[0], groups[1]])  # texts among them: tokenized here
    assert counting.tokenized == len(groups[1])
    for a, b in zip(from_texts, handler.execute(mixed, 0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


async def test_frontend_tokenizers_load_once_per_version_and_fall_back(
    tiny_repository: Path, encoder: TextEncoder,
) -> None:
    tokenizers = FrontendTokenizers(tiny_repository)
    key = ("tiny-sentiment", 1, MAX_LENGTH)
    got = await asyncio.gather(*(tokenizers.encode(key, tuple(TEXTS)) for _ in range(3)))
    for tokens in got:
        assert tokens is not None
        np.testing.assert_array_equal(tokens.ids, encoder.encode_ids(TEXTS).ids)
    long = ("a few words " * 2000,)  # tokenized in a thread: the same ids
    tokens = await tokenizers.encode(key, long)
    assert tokens is not None and int(tokens.lengths[0]) == MAX_LENGTH
    assert tokenizers.loaded() == [key]
    missing = ("tiny-sentiment", 99, MAX_LENGTH)  # no such folder: the engine tokenizes
    assert await tokenizers.encode(missing, ("x",)) is None
    tokenizers.keep([missing])
    assert tokenizers.loaded() == []
