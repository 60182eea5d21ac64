"""The committed card holds what a rebuild reproduces: a rebuild with unchanged quality leaves
config.yaml, model_card.json and MODEL_CARD.md byte for byte as they were (so ``make serve`` on
a fresh clone leaves ``git status`` clean); this machine's speeds go to measured.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.card import MEASURED_FILE, SPEED_METRICS, committed_stamp, write_model_files

COMMITTED = ("config.yaml", "model_card.json", "MODEL_CARD.md")
MACHINE_KEYS = {*SPEED_METRICS, "timings_s", "build_seconds", "latency_ms", "machine", "seconds"}


def _config(name: str) -> dict[str, object]:
    return {"name": name, "task": "text-classification", "labels": ["a", "b"], "max_length": 16,
            "engine": {"backend": "onnxruntime"}}  # fmt: skip


def test_committed_files_are_rewritten_only_when_they_change(tmp_path: Path) -> None:
    tmp_path = tmp_path / "m"
    tmp_path.mkdir()
    card = {"name": "m", "variants": [{"version": 1, "metrics": {"accuracy": 0.9}}]}
    assert write_model_files(tmp_path, _config("m"), card, "# m\n", {"build_seconds": 1.0})
    stamps = {n: (tmp_path / n).stat().st_mtime_ns for n in COMMITTED}
    # new timings only: measured.json changes, the committed files are not touched
    assert not write_model_files(tmp_path, _config("m"), card, "# m\n", {"build_seconds": 2.0})
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in COMMITTED} == stamps
    assert json.loads((tmp_path / MEASURED_FILE).read_text()) == {"build_seconds": 2.0}
    # a quality change rewrites the card
    card["variants"][0]["metrics"]["accuracy"] = 0.8
    assert write_model_files(tmp_path, _config("m"), card, "# m\n", {})
    written = json.loads((tmp_path / "model_card.json").read_text())
    assert written["variants"][0]["metrics"] == {"accuracy": 0.8}


def test_a_rebuild_of_the_committed_recipe_keeps_the_committed_card(tmp_path: Path) -> None:
    """int8 quantization and the drift probe move quality by tenths of a point from one machine
    to the next: a build whose stamp is the committed card's keeps config and card, a changed
    recipe or a forced rebuild rewrites them, and every build writes measured.json."""
    folder = tmp_path / "m"
    folder.mkdir()
    card = {"name": "m", "variants": [{"version": 1, "metrics": {"accuracy": 0.9}}]}
    assert write_model_files(folder, _config("m"), card, "# m 0.9\n", {"stamp": "aaa"})
    assert committed_stamp(folder) == "aaa"
    committed = {n: (folder / n).read_bytes() for n in COMMITTED}
    # same recipe, figures moved by a rebuild elsewhere: the committed files stay as they were
    moved = {"name": "m", "variants": [{"version": 1, "metrics": {"accuracy": 0.898}}]}
    assert not write_model_files(folder, _config("m"), moved, "# m 0.898\n",
                                 {"stamp": "aaa", "accuracy": 0.898})
    assert {n: (folder / n).read_bytes() for n in COMMITTED} == committed
    assert json.loads((folder / MEASURED_FILE).read_text())["accuracy"] == 0.898
    # a forced rebuild writes this build's figures
    assert write_model_files(folder, _config("m"), moved, "# m 0.898\n", {"stamp": "aaa"},
                             rewrite=True)
    assert (folder / "MODEL_CARD.md").read_text() == "# m 0.898\n"
    # a changed recipe (another stamp) rewrites and records the new stamp
    assert write_model_files(folder, _config("m"), card, "# m 0.9\n", {"stamp": "bbb"})
    assert committed_stamp(folder) == "bbb"
    assert json.loads((folder / "model_card.json").read_text())["variants"] == card["variants"]


@pytest.mark.parametrize("model", ["airline-sentiment", "review-sentiment", "home-intent", "movie-ranker"])
def test_committed_cards_describe_the_current_recipe(model: str) -> None:
    """A fresh clone's `make serve` builds with this recipe's stamp; a committed card of another
    stamp would be rewritten by that build and leave the git tree dirty (rebuild it and commit
    the card when the recipe changes)."""
    from pipeline.build import recipe_stamp

    folder = Path(__file__).resolve().parents[2] / "model_repository" / model
    assert committed_stamp(folder) == recipe_stamp(model)


def _machine_keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return {k for k in value if k in MACHINE_KEYS} | set().union(*map(_machine_keys, value.values()))
    if isinstance(value, list):
        return set().union(*map(_machine_keys, value))
    return set()


@pytest.mark.parametrize("model", ["airline-sentiment", "review-sentiment", "home-intent", "movie-ranker"])
def test_committed_cards_hold_no_machine_measurements(model: str) -> None:
    folder = Path(__file__).resolve().parents[2] / "model_repository" / model
    card = json.loads((folder / "model_card.json").read_text())
    assert _machine_keys(card) == set()
    text = (folder / "MODEL_CARD.md").read_text()
    assert "texts/s" not in text and " ms " not in text and "CPU cores" not in text
    assert yaml.safe_load((folder / "config.yaml").read_text())["name"] == model


@pytest.mark.slow
def test_a_forced_smoke_rebuild_leaves_the_committed_files_byte_identical(tmp_path: Path) -> None:
    from pipeline.build import build
    from pipeline.smoke import SMOKE_MODEL, smoke_repository

    repository = tmp_path / "repository"
    shutil.copytree(smoke_repository() / SMOKE_MODEL, repository / SMOKE_MODEL)
    model_dir = repository / SMOKE_MODEL
    before = {name: (model_dir / name).read_bytes() for name in COMMITTED}
    measured = (model_dir / MEASURED_FILE).read_text()
    build([SMOKE_MODEL], repository, profile="smoke", force=True, progress=False)
    assert {name: (model_dir / name).read_bytes() for name in COMMITTED} == before
    assert (model_dir / MEASURED_FILE).read_text() != measured  # this build's own timings
    assert _machine_keys(json.loads(before["model_card.json"])) == set()
    # re-deriving the card from model_card.json + measured.json (no rebuild) changes nothing either
    from pipeline.textcard import refresh_card

    refresh_card(model_dir)
    assert {name: (model_dir / name).read_bytes() for name in COMMITTED} == before


@pytest.mark.parametrize("model", ["airline-sentiment", "review-sentiment", "home-intent"])
def test_committed_text_configs_are_what_the_build_writes(model: str) -> None:
    """Same bytes as ``text_config`` gives for the card, so a build that rewrites the config
    (a changed recipe) changes only what the card changed; short-text models batch 128 rows."""
    from pipeline.card import config_text
    from pipeline.textcard import batch_rows, text_config

    folder = Path(__file__).resolve().parents[2] / "model_repository" / model
    card = json.loads((folder / "model_card.json").read_text())
    config = text_config(model, card["labels"], card["max_length"], card["default_version"])
    assert (folder / "config.yaml").read_text() == config_text(config)
    assert config["batching"]["max_batch_size"] == (128 if card["max_length"] <= 32 else 32)
    assert batch_rows(16) == 128 and batch_rows(56) == 32
