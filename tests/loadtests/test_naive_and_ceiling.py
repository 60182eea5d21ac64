"""The naive reference server (in-process, ASGI) and the offline ceiling on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import httpx
import numpy as np
import pytest

from loadtests.ceiling import arrival_batches, measure_ceiling, sorted_batches
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
    c = measure_ceiling(model, texts, batch_size=32, duration_s=60.0, batch1_texts=5)
    assert c.arrival.texts == c.sorted.texts == 256
    assert c.arrival.batches == 8
    assert c.arrival.texts_per_s > 0 and c.batch1_median_ms > 0
    # Sorting inside windows can only remove padding for the same texts and batch size.
    assert 0 <= c.sorted.padding_waste <= c.arrival.padding_waste
