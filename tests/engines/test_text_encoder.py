"""Batch tokenization: padding to the batch's own longest text, truncation, lengths."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from engines.errors import ArtifactError
from engines.tokenization import EncodedBatch, TextEncoder
from tests.support import SAMPLE_TEXTS, tiny_artifacts

CLS, SEP, PAD = 101, 102, 0


@pytest.fixture(scope="module")
def folder() -> Path:
    hf, _ = tiny_artifacts()
    return hf


@pytest.fixture(scope="module")
def encoder(folder: Path) -> TextEncoder:
    return TextEncoder.from_dir(folder, max_length=64)


def _reference(folder: Path, text: str, max_length: int) -> list[int]:
    """The ids a fresh tokenizer gives one text, unpadded, truncated at ``max_length``."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    ids: list[int] = tokenizer.encode(text).ids
    return ids


def test_pads_to_the_batch_longest_not_max_length(encoder: TextEncoder) -> None:
    batch = encoder.encode(["hello there", "a somewhat longer text about a delayed flight"])
    longest = int(batch.lengths.max())
    assert batch.input_ids.shape == (2, longest)
    assert longest < encoder.max_length  # tokenizer.json itself says "pad to 128": ignored
    short = int(batch.lengths[0])
    assert (batch.input_ids[0, short:] == PAD).all()
    assert batch.input_ids[0, short - 1] == SEP


def test_ids_lengths_and_mask_match_encoding_each_text(
    encoder: TextEncoder, folder: Path
) -> None:
    batch = encoder.encode(SAMPLE_TEXTS)
    for row, text in enumerate(SAMPLE_TEXTS):
        expected = _reference(folder, text, 64)
        n = int(batch.lengths[row])
        assert n == len(expected)
        assert batch.input_ids[row, :n].tolist() == expected
        assert batch.attention_mask[row].tolist() == [1] * n + [0] * (batch.input_ids.shape[1] - n)
    assert (batch.token_type_ids == 0).all()
    for array in (batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.lengths):
        assert array.dtype == np.int64


def test_truncates_at_max_length(folder: Path) -> None:
    long_text = "delayed again " * 200
    for max_length in (16, 200):  # 200 passes the 128 that tokenizer.json sets
        batch = TextEncoder.from_dir(folder, max_length).encode([long_text, "ok"])
        assert batch.input_ids.shape == (2, max_length)
        assert batch.lengths.tolist() == [max_length, 3]
        assert batch.input_ids[0, 0] == CLS
        assert batch.input_ids[0, -1] == SEP


def test_token_counts(encoder: TextEncoder) -> None:
    batch = encoder.encode(SAMPLE_TEXTS)
    assert encoder.count_tokens(SAMPLE_TEXTS) == batch.lengths.tolist()
    assert batch.real_tokens == int(batch.lengths.sum())
    assert batch.padded_tokens == len(SAMPLE_TEXTS) * int(batch.lengths.max())
    assert len(batch) == len(SAMPLE_TEXTS)


def test_empty_text_is_cls_sep_and_no_texts_is_an_empty_batch(encoder: TextEncoder) -> None:
    assert encoder.encode([""]).input_ids.tolist() == [[CLS, SEP]]
    empty = encoder.encode([])
    assert empty.input_ids.shape == (0, 0)
    assert len(empty) == 0


def test_concat_equals_encoding_everything_at_once(encoder: TextEncoder) -> None:
    parts = [encoder.encode(SAMPLE_TEXTS[:2]), encoder.encode(SAMPLE_TEXTS[2:])]
    merged = EncodedBatch.concat(parts)
    whole = encoder.encode(SAMPLE_TEXTS)
    for name, array in whole.as_inputs().items():
        np.testing.assert_array_equal(merged.as_inputs()[name], array, err_msg=name)
    np.testing.assert_array_equal(merged.lengths, whole.lengths)


def test_encoding_from_many_threads_gives_the_same_arrays(encoder: TextEncoder) -> None:
    texts = [f"{t} #{i}" for i, t in enumerate(SAMPLE_TEXTS * 8)]
    expected = [encoder.encode(texts[i : i + 3]).input_ids for i in range(0, len(texts), 3)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: encoder.encode(texts[i : i + 3]).input_ids,
                            range(0, len(texts), 3)))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_or_broken_tokenizer_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"no tokenizer\.json"):
        TextEncoder.from_dir(tmp_path, 64)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot load"):
        TextEncoder.from_dir(tmp_path, 64)


def test_max_length_below_two_is_rejected(folder: Path) -> None:
    with pytest.raises(ValueError, match="max_length"):
        TextEncoder.from_dir(folder, 1)
