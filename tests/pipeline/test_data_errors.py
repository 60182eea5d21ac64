"""A missing or corrupt data file, or an unknown model, is a BuildError that says what to fix."""

from __future__ import annotations

import bz2
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.data import load_airline, load_reviews
from pipeline.errors import BuildError


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(BuildError, match=r"data file missing: .*nowhere\.csv"):
        load_airline(missing)


def test_csv_without_expected_columns_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "airline.csv"
    bad.write_bytes(b"\x00\xff garbage,more\n1,2\n")
    with pytest.raises(BuildError, match=r"corrupt data file: expected columns"):
        load_airline(bad)


def test_truncated_csv_is_corrupt(tmp_path: Path) -> None:
    short = tmp_path / "airline.csv"
    short.write_text("sentiment,confidence,text\nnegative,1,@united late again\n")
    with pytest.raises(BuildError, match=r"only 1 usable examples"):
        load_airline(short)


def test_bad_bz2_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "rotten_tomatoes_corpus_full.csv.bz2"
    bad.write_bytes(bz2.compress(b"category,text\nfresh,good\n" * 3)[:-20])
    with pytest.raises(BuildError, match=r"not a readable bz2 file"):
        load_reviews(bad)


def test_unknown_model_and_profile(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"unknown model\(s\) nope; the default models are"):
        build(["nope"], tmp_path, progress=False)
    with pytest.raises(BuildError, match=r"unknown build profile 'tiny'"):
        build(["home-intent"], tmp_path, profile="tiny", progress=False)
