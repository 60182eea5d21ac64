"""The naive reference server (in-process, ASGI) and the offline ceiling on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from itertools import chain
from pathlib import Path

import httpx
import numpy as np
import pytest

from loadtests.ceiling import (
    POLICIES,
    arrival_batches,
    measure_ceiling,
    measure_policies,
    offline_rows,
    sorted_batches,
    splits,
)
from loadtests.corpus import airline_tweets
from loadtests.engine_model import TextModel, load_text_model
from loadtests.naive_server import create_app
from tests.loadtests.conftest import TINY_MODEL

TEXTS = ["@united lost my bag again", "thanks!", "@JetBlue the crew was wonderful today, thank you"]


@pytest.fixture(scope="module")
def model(tiny_repository: Path) -> Iterator[TextModel]:
    m = load_text_model(tiny_repository, TINY_MODEL, threads=1)
    yield m
    m.close()


@pytest.fixture
async def client(model: TextModel) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(model))
    return httpx.AsyncClient(transport=transport, base_url="http://naive")


def test_model_loads_newest_version_with_config_threads(model: TextModel) -> None:
    assert model.version == "1"
    assert model.engine_threads == 1
    result = model.classify(TEXTS)
    assert result.probabilities.shape == (3, len(model.labels))
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert 0 < result.real_tokens < result.padded_tokens


async def test_classify_answers_each_text_in_order(client: httpx.AsyncClient, model: TextModel) -> None:
    r = await client.post(f"/v1/models/{TINY_MODEL}/classify", json={"inputs": TEXTS, "top_k": 2})
    assert r.status_code == 200
    doc = r.json()
    assert doc["model_name"] == TINY_MODEL and doc["model_version"] == "1"
    assert [len(p) for p in doc["predictions"]] == [2, 2, 2]
    expected = model.classify(TEXTS).probabilities
    for row, predictions in zip(expected, doc["predictions"], strict=True):
        best = int(np.argmax(row))
        assert predictions[0]["label"] == model.labels[best]
        assert predictions[0]["score"] == pytest.approx(float(row[best]), rel=1e-5)
        assert predictions[0]["score"] >= predictions[1]["score"]


async def test_infer_speaks_kserve_v2_json(client: httpx.AsyncClient, model: TextModel) -> None:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": TEXTS}]}
    r = await client.post(f"/v2/models/{TINY_MODEL}/infer", json=body)
    assert r.status_code == 200
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["probabilities"]["shape"] == [3, len(model.labels)]
    assert outputs["label"]["shape"] == [3]
    assert set(outputs["label"]["data"]) <= set(model.labels)


async def test_infer_on_a_version_path_serves_only_the_loaded_version(
    client: httpx.AsyncClient,
) -> None:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": TEXTS[:1]}]}
    r = await client.post(f"/v2/models/{TINY_MODEL}/versions/1/infer", json=body)
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    assert (await client.post(f"/v2/models/{TINY_MODEL}/versions/2/infer", json=body)).status_code == 404


async def test_unknown_model_is_404_and_stats_count_engine_calls(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/models/nope/classify", json={"inputs": ["x"]})).status_code == 404
    assert (await client.get("/v2/health/ready")).status_code == 200
    before = (await client.get("/stats")).json()
    await client.post(f"/v1/models/{TINY_MODEL}/classify", json={"inputs": TEXTS})
    after = (await client.get("/stats")).json()
    assert after["texts"] - before["texts"] == 3
    assert after["executions"] - before["executions"] == 1
    assert after["padded_tokens"] - before["padded_tokens"] > after["real_tokens"] - before["real_tokens"]


def test_batching_helpers(model: TextModel) -> None:
    texts = list(airline_tweets()[:100])
    batches = arrival_batches(texts, 32)
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    assert list(chain.from_iterable(batches)) == texts
    grouped = sorted_batches(model, texts, 32, window_batches=2)
    assert sorted(chain.from_iterable(grouped)) == sorted(texts)
    lengths = [int(n) for n in model.encode([*grouped[0], *grouped[1]]).lengths]
    assert lengths == sorted(lengths)  # sorted inside the first window


def test_ceiling_figures_on_the_tiny_model(model: TextModel) -> None:
    texts = list(airline_tweets()[:256])
    arrival, grouped, singles = measure_policies([model], texts, batch_size=32, duration_s=60.0,
                                                 batch1_texts=5)
    assert [f.policy for f in (arrival, grouped, singles)] == list(POLICIES)
    assert arrival.texts == grouped.texts == 256
    assert arrival.batches == 8 and singles.texts == singles.batches == 5
    assert arrival.texts_per_s > 0 and singles.median_call_ms > 0
    # Sorting inside windows can only remove padding for the same texts and batch size.
    assert 0 <= grouped.padding_waste <= arrival.padding_waste


def test_splits_divide_the_cores() -> None:
    assert splits(1) == [(1, 1)]
    assert splits(2) == [(1, 2), (2, 1)]
    assert splits(4) == [(1, 4), (2, 2), (4, 1)]


def test_ceiling_measures_every_policy_at_every_split(tiny_repository: Path) -> None:
    loaded: list[int] = []

    def load(threads: int) -> TextModel:
        loaded.append(threads)
        return load_text_model(tiny_repository, TINY_MODEL, threads)

    texts = list(airline_tweets()[:128])
    c = measure_ceiling(load, texts, cores=2, batch_size=32, duration_s=60.0, batch1_texts=8)
    assert sorted(loaded) == [1, 1, 2]  # one 2-thread instance, then two 1-thread instances
    assert [(f.policy, f.split) for f in c.figures] == [
        (p, s) for s in ("1x2", "2x1") for p in POLICIES]
    for f in c.figures:
        # Two instances share one sequence of batches: every text once, none twice.
        assert f.texts == (8 if f.policy == "batch-1" else 128)
    assert c.best().texts_per_s == max(f.texts_per_s for f in c.figures)
    rows = offline_rows(asdict(c))
    assert [(r.shape, r.extra["split"]) for r in rows] == [(f.policy, f.split) for f in c.figures]
    assert all(r.target == "ceiling" and r.mode == "offline" for r in rows)
