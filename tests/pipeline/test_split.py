"""Deduplication and splitting: no text may reach two splits."""

from __future__ import annotations

import pytest

from pipeline.build import TEXT_MODELS, splits_for
from pipeline.split import dedupe, split


def test_dedupe_folds_duplicates_and_drops_ties() -> None:
    texts = ["a", "b", "a", "c", "c", "a"]
    targets = [0, 1, 0, 1, 2, 1]
    out_texts, out_targets, duplicates, conflicts = dedupe(texts, targets)
    assert out_texts == ["a", "b"]
    assert out_targets == [0, 1]  # "a": 2 votes for 0, 1 for 1
    assert duplicates == 3
    assert conflicts == 1  # "c" is 1 vs 1


def test_split_is_disjoint_complete_and_seeded() -> None:
    texts = [f"text {i % 700}" for i in range(1000)]  # 300 duplicates
    targets = [i % 700 % 3 for i in range(1000)]
    parts = split(texts, targets, validation=0.1, test=0.2, seed=5)
    train, val, test = (set(p.texts) for p in (parts.train, parts.validation, parts.test))
    assert not train & val and not train & test and not val & test
    assert len(train) + len(val) + len(test) == 700
    assert (len(val), len(test)) == (70, 140)
    again = split(texts, targets, validation=0.1, test=0.2, seed=5)
    assert again.test.texts == parts.test.texts
    assert split(texts, targets, validation=0.1, test=0.2, seed=6).test.texts != parts.test.texts


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_real_splits_share_no_text(name: str) -> None:
    parts = splits_for(name, "full")
    train, val, test = (set(p.texts) for p in (parts.train, parts.validation, parts.test))
    assert len(train) == len(parts.train.texts)  # deduplicated within a split too
    assert not train & val and not train & test and not val & test
    assert len(test) >= 700 if name != "home-intent" else len(test) >= 500
