"""``POST /v1/models/{model}/classify`` in-process: top-k, order, and every refusal's status and
body (the real app through ``httpx.ASGITransport``; no port, no process)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.api.conftest import (
    INFERENCE_MODELS,
    PLUGINS,
    RANKER_MODEL,
    TIED_LABELS,
    TIED_LOGITS,
    TIED_MODEL,
    TINY_MODEL,
    Served,
    serve_in_process,
)
from tests.support.tiny_model import TINY_LABELS

pytestmark = pytest.mark.asyncio(loop_scope="module")  # one app and loop for the module

TEXTS = ["my bag never arrived", "great crew, thank you!", "is there wifi?", "delayed again"]


def tied_probabilities() -> list[float]:
    total = sum(math.exp(x) for x in TIED_LOGITS)
    return [math.exp(x) / total for x in TIED_LOGITS]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(inference_repository: Path) -> AsyncIterator[Served]:
    async with serve_in_process(inference_repository, INFERENCE_MODELS,
                                engine_plugins=PLUGINS) as s:
        yield s


async def classify(served: Served, body: object, model: str = TINY_MODEL, query: str = "",
                   ) -> tuple[int, dict[str, object]]:
    r = await served.client.post(f"/v1/models/{model}/classify{query}", json=body)
    assert r.headers["content-type"] == "application/json"
    doc: dict[str, object] = r.json()
    return r.status_code, doc


@pytest.mark.parametrize("top_k", [1, 2, 3])
async def test_top_k_labels_come_best_first_and_ties_in_label_order(
    served: Served, top_k: int
) -> None:
    status, doc = await classify(served, {"inputs": ["a", "b"], "top_k": top_k}, TIED_MODEL)
    assert status == 200, doc
    expected = [{"label": label, "score": pytest.approx(p, abs=1e-6)}
                for label, p in zip(TIED_LABELS, tied_probabilities(), strict=True)][:top_k]
    assert doc["predictions"] == [expected, expected]


async def test_top_k_defaults_to_one_and_a_string_is_one_text(served: Served) -> None:
    status, doc = await classify(served, {"inputs": "just one"}, TIED_MODEL)
    assert status == 200, doc
    assert doc == {"model_name": TIED_MODEL, "model_version": "1", "predictions": [
        [{"label": "alpha", "score": pytest.approx(tied_probabilities()[0], abs=1e-6)}]]}


async def test_predictions_keep_the_texts_order_and_each_text_its_own_answer(
    served: Served,
) -> None:
    status, batched = await classify(served, {"inputs": TEXTS, "top_k": 3})
    assert status == 200, batched
    rows = batched["predictions"]
    assert isinstance(rows, list) and len(rows) == len(TEXTS)
    for text, row in zip(TEXTS, rows, strict=True):
        assert sorted(p["label"] for p in row) == sorted(TINY_LABELS)
        scores = [p["score"] for p in row]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        _, single = await classify(served, {"inputs": [text], "top_k": 3})
        (alone,) = single["predictions"]  # type: ignore[misc]
        assert [p["label"] for p in alone] == [p["label"] for p in row]
        assert [p["score"] for p in alone] == pytest.approx(scores, abs=1e-4)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"inputs": ["x"], "top_k": 0}, 400, "top_k: must be within 1..3 (the model's classes)"),
        ({"inputs": ["x"], "top_k": 4}, 400, "top_k: must be within 1..3 (the model's classes)"),
        ({"inputs": ["x"], "top_k": "2"}, 400, "top_k: must be an integer"),
        ({"inputs": ["x"], "top_k": True}, 400, "top_k: must be an integer"),
        ({"inputs": []}, 400, "inputs: needs at least one text"),
        ({"inputs": ["x", 1]}, 400, "inputs[1]: must be a string"),
        ({"inputs": {"x": 1}}, 400, "inputs: must be a list of strings"),
        ({"inputs": ["x"] * 65}, 413, "inputs: 65 texts in one request; model 'tiny-sentiment' "
         "takes at most 64 (max_inputs_per_request)"),
        ({"inputs": ["x"], "texts": ["y"]}, 400, "body: unknown fields ['texts']"),
        (["x"], 400, "body: must be a JSON object with 'inputs'"),
        ({"inputs": ["x"], "timeout_us": -1}, 400, "timeout_us: must be a non-negative integer"),
        ({"inputs": ["x"], "priority": -1}, 400, "priority: must be an integer within "
         "0..priority_levels (1 is the highest, 0 the model's default level)"),
        ({"inputs": ["x"], "priority": 2}, 400, "priority: must be an integer within 0..0, got 2 "
         "(model 'tiny-sentiment' has priority_levels 0: priorities are off)"),
        ({"inputs": ["x"] * 65, "priority": 2}, 413, "inputs: 65 texts in one request; model "
         "'tiny-sentiment' takes at most 64 (max_inputs_per_request)"),  # texts before the level
    ],
)
async def test_refusals_have_their_status_and_name_the_field_and_limit(
    served: Served, body: object, status: int, error: str
) -> None:
    assert await classify(served, body) == (status, {"error": error})


async def test_not_json_is_a_400(served: Served) -> None:
    r = await served.client.post(f"/v1/models/{TINY_MODEL}/classify", content=b"{nope",
                                 headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("body: not valid JSON")


async def test_a_tensor_model_points_to_the_v2_route(served: Served) -> None:
    assert await classify(served, {"inputs": ["x"]}, RANKER_MODEL) == (400, {
        "error": f"model '{RANKER_MODEL}' is a tensor model; use /v2/models/{RANKER_MODEL}/infer"})


async def test_unknown_model_and_version_are_404(served: Served) -> None:
    assert await classify(served, {"inputs": ["x"]}, "nope") == (
        404, {"error": "model 'nope' is not in the repository"})
    assert await classify(served, {"inputs": ["x"]}, query="?version=7") == (
        404, {"error": f"model '{TINY_MODEL}' version 7 is not served"})
    status, doc = await classify(served, {"inputs": ["x"]}, query="?version=1")
    assert (status, doc["model_version"]) == (200, "1")
