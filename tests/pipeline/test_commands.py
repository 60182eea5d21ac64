"""What ``sluice serve`` builds first (pipeline.commands, reached through server/tools.py): the
catalogue's default models whose folder is in the repository and whose served files are not."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.catalogue import CATALOGUE, DEFAULT_MODELS, entry
from pipeline.commands import build_missing, defaults_to_build

ROOT = Path(__file__).resolve().parents[2]


def test_catalogue_has_one_entry_per_default_model_and_fits_the_ranker() -> None:
    assert [e.name for e in CATALOGUE] == list(DEFAULT_MODELS)
    assert {e.kind for e in CATALOGUE} == {"text", "ranker"}
    for e in CATALOGUE:
        assert set(e.recipes) == {"full", "smoke"}
        assert e.description and e.data_source
        assert (e.load is None) == (e.kind == "ranker")
    assert entry("airline-sentiment").dataset().labels == entry("airline-sentiment").labels


def test_only_unbuilt_default_folders_of_the_repository_are_built(tmp_path: Path) -> None:
    assert defaults_to_build(tmp_path, ()) == []  # a repository of your own is left alone
    shutil.copytree(ROOT / "model_repository" / "airline-sentiment", tmp_path / "airline-sentiment",
                    ignore=shutil.ignore_patterns("[0-9]*", "build", "measured.json"))  # fmt: skip
    assert defaults_to_build(tmp_path, ()) == ["airline-sentiment"]
    assert defaults_to_build(tmp_path, ("tiny-sentiment",)) == []  # asked for others only
    assert defaults_to_build(tmp_path, ("home-intent",)) == ["home-intent"]  # asked by name


def test_nothing_missing_builds_nothing(tmp_path: Path) -> None:
    assert build_missing(tmp_path, ()) == 0
