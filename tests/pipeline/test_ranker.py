"""movie-ranker on the smoke profile: protocol, artifacts, card, and an idempotent rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.ranker import data as d
from pipeline.ranker import evaluate as ev
from server.errors import InvalidInput
from server.inference.ranking import RankingTables


def test_split_by_time_takes_each_users_latest_fifth() -> None:
    ratings, features = d.load()
    assert len(ratings) == 100_000 and features.users.shape == (944, 3)
    train, test = d.split_by_time(ratings)
    assert abs(len(test) - 20_000) < 943
    for u in (1, 196, 943):
        assert train.time[train.user == u].max() <= test.time[test.user == u].min()


def test_metrics_are_right_on_known_cases() -> None:
    assert ev.auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert ev.auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    hit, ndcg = ev.hit_ndcg(np.array([[0.9, 0.1, 0.2], [0.1, 0.5, 0.9]]), k=2)
    assert hit == 0.5 and ndcg == 0.5


def test_smoke_build_writes_model_tables_card_and_skips_a_rebuild(tmp_path: Path) -> None:
    from pipeline.build import build, missing_models

    assert missing_models(tmp_path, ["movie-ranker"]) == ["movie-ranker"]
    build(["movie-ranker"], tmp_path, profile="smoke", progress=False)
    model_dir = tmp_path / "movie-ranker"
    assert missing_models(tmp_path, ["movie-ranker"]) == []
    card = json.loads((model_dir / "model_card.json").read_text())
    assert {"auc", "ndcg@10", "hit@10"} <= set(card["variants"][0]["metrics"])
    assert card["baselines"][0]["name"] == "popularity"
    measured = json.loads((model_dir / "measured.json").read_text())
    assert {"latency_ms_100", "latency_ms_1000"} <= set(measured["variants"][0]["latency_ms"])
    assert "latency_ms" not in card["variants"][0] and "timings_s" not in card
    committed = ("config.yaml", "model_card.json", "MODEL_CARD.md")
    before = {name: (model_dir / name).read_bytes() for name in committed}
    stamp = (model_dir / "build" / "stamp.json").read_bytes()
    build(["movie-ranker"], tmp_path, profile="smoke", progress=False)  # skipped: stamp matches
    assert (model_dir / "build" / "stamp.json").read_bytes() == stamp
    measured_at = (model_dir / "measured.json").stat().st_mtime_ns
    # a forced rebuild trains again: same quality, so the committed files keep their bytes
    build(["movie-ranker"], tmp_path, profile="smoke", force=True, progress=False)
    assert {name: (model_dir / name).read_bytes() for name in committed} == before
    assert (model_dir / "measured.json").stat().st_mtime_ns != measured_at

    tables = RankingTables.load(model_dir / "1")
    feeds = tables.gather(196, [242, 302])
    assert feeds["item"].tolist() == [242, 302] and feeds["genres"].shape == (2, 19)
    with pytest.raises(InvalidInput, match=r"item_ids: unknown id\(s\) 0, 5000"):
        tables.gather(196, [5000, 0, 242])
    with pytest.raises(InvalidInput, match="user_id"):
        tables.gather(944, [242])
    lenient = RankingTables(tables.users, tables.items, fallback=True)
    assert lenient.gather(944, [5000])["item"].tolist() == [0]
