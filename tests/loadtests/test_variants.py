"""The bench's option variants and the overlay repository that pins a version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loadtests.engine_model import load_text_model
from loadtests.variants import FIXED_SUB_BATCH_TOKENS, prepare, version_repository
from tests.loadtests.conftest import TINY_MODEL


def test_variants(tmp_path: Path) -> None:
    assert prepare("default", tmp_path).target == "sluice"
    auth = prepare("auth", tmp_path / "a")
    assert auth.target == "sluice[auth]" and auth.api_key
    folder = Path(auth.args[auth.args.index("--api-keys-dir") + 1])
    assert [p.read_text().strip() for p in folder.iterdir()] == [auth.api_key]
    assert prepare("access-log", tmp_path).env["SLUICE_ACCESS_LOG"] == "true"
    assert prepare("no-access-log", tmp_path).env == {"SLUICE_ACCESS_LOG": "false"}
    with pytest.raises(ValueError):
        prepare("tls", tmp_path)


def test_version_overlay_leaves_the_repository_alone(tiny_repository: Path, tmp_path: Path) -> None:
    original = (tiny_repository / TINY_MODEL / "config.yaml").read_text()
    overlay = version_repository(tiny_repository, TINY_MODEL, "1", tmp_path)
    config = yaml.safe_load((overlay / TINY_MODEL / "config.yaml").read_text())
    assert config["version_policy"] == {"specific": {"versions": [1]}}
    assert (overlay / TINY_MODEL / "1").is_symlink()
    assert (tiny_repository / TINY_MODEL / "config.yaml").read_text() == original
    model = load_text_model(overlay, TINY_MODEL, threads=1)
    try:
        assert model.version == "1"
    finally:
        model.close()
    with pytest.raises(FileNotFoundError):
        version_repository(tiny_repository, TINY_MODEL, "7", tmp_path / "other")


def test_fixed_cut_pins_the_hand_tuned_cut_on_an_overlay(tiny_repository: Path, tmp_path: Path) -> None:
    original = (tiny_repository / TINY_MODEL / "config.yaml").read_text()
    pinned = version_repository(tiny_repository, TINY_MODEL, "1", tmp_path / "v")
    fixed = prepare("fixed-cut", tmp_path / "f", pinned, TINY_MODEL)
    assert fixed.target == "sluice[fixed-cut]"
    assert fixed.env == {"SLUICE_COST_GRID_BUDGET_S": "0"} and fixed.repository is not None
    config = yaml.safe_load((fixed.repository / TINY_MODEL / "config.yaml").read_text())
    assert config["batching"]["sub_batch_tokens"] == FIXED_SUB_BATCH_TOKENS
    assert config["version_policy"] == {"specific": {"versions": [1]}}  # the version pin kept
    assert (tiny_repository / TINY_MODEL / "config.yaml").read_text() == original
    with pytest.raises(ValueError):
        prepare("fixed-cut", tmp_path / "g")


@pytest.mark.parametrize(("name", "count"), [("one-instance", 1), ("two-instances", 2)])
def test_split_variants_pin_the_instance_count_on_an_overlay(
    tiny_repository: Path, tmp_path: Path, name: str, count: int
) -> None:
    original = (tiny_repository / TINY_MODEL / "config.yaml").read_text()
    variant = prepare(name, tmp_path / name, tiny_repository, TINY_MODEL)
    assert variant.target == f"sluice[{name}]" and variant.env == {}
    assert variant.repository is not None
    config = yaml.safe_load((variant.repository / TINY_MODEL / "config.yaml").read_text())
    assert config["engine"]["instance_count"] == count
    assert "sub_batch_tokens" not in config.get("batching", {})  # the cost model still cuts
    assert (tiny_repository / TINY_MODEL / "config.yaml").read_text() == original
    with pytest.raises(ValueError):
        prepare(name, tmp_path / "none")
