"""``POST /v2/models/{model}/infer`` in-process: text and tensor models, JSON and the binary
tensor extension (encoded and parsed by tritonclient's own helpers), the classification
extension, and every refusal's status and body."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import pytest_asyncio
import tritonclient.http as triton

from tests.api.conftest import (
    INFERENCE_MODELS,
    PLUGINS,
    RANKER_MODEL,
    TIED_LABELS,
    TIED_MODEL,
    TINY_MODEL,
    Served,
    serve_in_process,
)
from tests.support.tensor_model import expected_scores
from tests.support.tiny_model import TINY_LABELS

pytestmark = pytest.mark.asyncio(loop_scope="module")  # one app and loop for the module

TEXTS = ["my bag never arrived", "great crew, thank you!", "wörds ünicode ✈"]
FEATURES = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [-1, 0.5, 2, 8]], dtype=np.float32)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(inference_repository: Path) -> AsyncIterator[Served]:
    async with serve_in_process(inference_repository, INFERENCE_MODELS,
                                engine_plugins=PLUGINS) as s:
        yield s


def text_input(texts: list[str], shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "text", "datatype": "BYTES", "shape": shape or [len(texts)], "data": texts,
            **extra}


async def infer(served: Served, doc: dict[str, Any], model: str = TINY_MODEL,
                path: str = "") -> httpx.Response:
    return await served.client.post(f"/v2/models/{model}{path}/infer", json=doc)


async def binary_infer(served: Served, model: str, inputs: list[triton.InferInput],
                       outputs: list[triton.InferRequestedOutput] | None = None,
                       ) -> triton.InferResult:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    r = await served.client.post(f"/v2/models/{model}/infer", content=body, headers={
        "Inference-Header-Content-Length": str(json_size),
        "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    return triton.InferenceServerClient.parse_response_body(
        r.content, header_length=int(r.headers["inference-header-content-length"]))


def outputs_of(r: httpx.Response) -> dict[str, dict[str, Any]]:
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


async def test_text_model_answers_probabilities_and_the_best_label(served: Served) -> None:
    r = await infer(served, {"id": "req-7", "inputs": [text_input(TEXTS)]})
    doc = r.json()
    assert (doc["model_name"], doc["model_version"], doc["id"]) == (TINY_MODEL, "1", "req-7")
    out = outputs_of(r)
    assert list(out) == ["probabilities", "label"]
    probs = np.array(out["probabilities"]["data"]).reshape(out["probabilities"]["shape"])
    assert out["probabilities"]["datatype"] == "FP32" and probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out["label"] == {"name": "label", "datatype": "BYTES", "shape": [3],
                            "data": [TINY_LABELS[j] for j in probs.argmax(axis=1)]}
    column = outputs_of(await infer(served, {"inputs": [text_input(TEXTS, [3, 1])]}))
    assert column["label"]["data"] == out["label"]["data"]  # [n, 1] is the same n texts
    np.testing.assert_allclose(column["probabilities"]["data"], probs.reshape(-1), atol=1e-6)


async def test_binary_text_in_and_out_matches_json(served: Served) -> None:
    inp = triton.InferInput("text", [len(TEXTS)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object), binary_data=True)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True),
               triton.InferRequestedOutput("label", binary_data=True)]
    result = await binary_infer(served, TINY_MODEL, [inp], outputs)
    json_out = outputs_of(await infer(served, {"inputs": [text_input(TEXTS)]}))
    np.testing.assert_allclose(result.as_numpy("probabilities").reshape(-1),
                               json_out["probabilities"]["data"], atol=1e-6)
    assert [b.decode() for b in result.as_numpy("label")] == json_out["label"]["data"]
    # no outputs named: tritonclient's default asks for every output in binary
    everything = await binary_infer(served, TINY_MODEL, [inp])
    assert everything.as_numpy("probabilities").shape == (3, 3)


async def test_binary_data_output_sends_every_output_as_bytes(served: Served) -> None:
    r = await infer(served, {"inputs": [text_input(["a", "b"])],
                             "parameters": {"binary_data_output": True}})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    size = int(r.headers["inference-header-content-length"])
    head = orjson.loads(r.content[:size])
    probs_size, label_size = (o["parameters"]["binary_data_size"] for o in head["outputs"])
    assert probs_size == 2 * 3 * 4 and size + probs_size + label_size == len(r.content)
    labels, offset = [], size + probs_size
    while offset < len(r.content):
        (n,) = struct.unpack_from("<I", r.content, offset)
        labels.append(r.content[offset + 4 : offset + 4 + n].decode())
        offset += 4 + n
    assert len(labels) == 2 and set(labels) <= set(TINY_LABELS)


async def test_classification_label_and_classify_agree_on_a_tie(served: Served) -> None:
    """The three views of one top-k: the v2 label, the classification extension, classify."""
    doc = {"inputs": [text_input(["x", "y"])],
           "outputs": [{"name": "label"},
                       {"name": "probabilities", "parameters": {"classification": 2}}]}
    out = outputs_of(await infer(served, doc, TIED_MODEL))
    assert out["label"]["data"] == ["alpha", "alpha"]
    assert out["probabilities"] == {"name": "probabilities", "datatype": "BYTES", "shape": [2, 2],
                                    "data": ["0.468311:0:alpha", "0.468311:1:beta"] * 2}
    doc["outputs"] = [{"name": "probabilities", "parameters": {"classification": 9}}]
    out = outputs_of(await infer(served, doc, TIED_MODEL))
    assert out["probabilities"]["shape"] == [2, 3]
    assert [entry.split(":")[2] for entry in out["probabilities"]["data"][:3]] == list(TIED_LABELS)
    r = await served.client.post(f"/v1/models/{TIED_MODEL}/classify",
                                 json={"inputs": ["x"], "top_k": 2})
    assert [p["label"] for p in r.json()["predictions"][0]] == ["alpha", "beta"]


async def test_tensor_model_json_and_binary(served: Served) -> None:
    doc = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 4],
                       "data": FEATURES.tolist()}]}
    out = outputs_of(await infer(served, doc, RANKER_MODEL))
    assert (out["score"]["datatype"], out["score"]["shape"]) == ("FP32", [3, 1])
    np.testing.assert_allclose(out["score"]["data"], expected_scores(FEATURES).reshape(-1),
                               rtol=1e-6)
    inp = triton.InferInput("features", [3, 4], "FP32")
    inp.set_data_from_numpy(FEATURES, binary_data=True)
    result = await binary_infer(served, RANKER_MODEL, [inp],
                                [triton.InferRequestedOutput("score", binary_data=True)])
    np.testing.assert_allclose(result.as_numpy("score"), expected_scores(FEATURES), rtol=1e-6)
    doc["outputs"] = [{"name": "score", "parameters": {"classification": 1}}]
    out = outputs_of(await infer(served, doc, RANKER_MODEL, "/versions/1"))
    # no labels in the config: the class index stands in for the label
    assert out["score"]["data"] == [f"{s:.6f}:0:0" for s in expected_scores(FEATURES)[:, 0]]


def features(shape: list[int], datatype: str = "FP32", name: str = "features") -> dict[str, Any]:
    data = np.zeros(shape).tolist()
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


BAD_UTF8 = b"\xff\xfe"


@pytest.mark.parametrize(
    ("model", "doc", "status", "error"),
    [
        (TINY_MODEL, {"inputs": [{**text_input(["a"]), "name": "words"}]}, 400,
         "inputs[0].name: 'words': this text model's input is 'text'"),
        (TINY_MODEL, {"inputs": [text_input(["a"]), {**text_input(["b"]), "name": "more"}]}, 400,
         "inputs: a text model takes one BYTES input named 'text'"),
        (TINY_MODEL, {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1],
                                  "data": [1.0]}]}, 400,
         "inputs ('text').datatype: must be BYTES for a text model"),
        (TINY_MODEL, {"inputs": [text_input(["a", "b"], [1, 2])]}, 400,
         "inputs ('text').shape: must be [n] or [n, 1] for a text model"),
        (TINY_MODEL, {"inputs": [text_input(["a"] * 65)]}, 413,
         "inputs ('text'): 65 texts in one request; model 'tiny-sentiment' takes at most 64 "
         "(max_inputs_per_request)"),
        (TINY_MODEL, {"inputs": [text_input(["a"])], "parameters": {"priority": 3}}, 400,
         "parameters.priority: must be an integer within 0..0, got 3 (model 'tiny-sentiment' "
         "has priority_levels 0: priorities are off)"),
        (TINY_MODEL, {"inputs": [text_input(["a"] * 65)], "parameters": {"priority": 3}}, 400,
         "parameters.priority: must be an integer within 0..0, got 3 (model 'tiny-sentiment' "
         "has priority_levels 0: priorities are off)"),  # the level is checked before the texts
        (TINY_MODEL, {"inputs": [text_input(["a"])], "outputs": [{"name": "nope"}]}, 400,
         "outputs: model 'tiny-sentiment' has no output 'nope' (has ['label', 'probabilities'])"),
        (TINY_MODEL, {"inputs": [text_input(["a"])],
                      "outputs": [{"name": "label", "parameters": {"classification": 1}}]}, 400,
         "outputs ('label').parameters.classification: needs a numeric output"),
        (RANKER_MODEL, features([2, 4], "FP64"), 400, "inputs ('features').datatype: must be FP32"),
        (RANKER_MODEL, features([2, 3]), 400,
         "inputs ('features').shape: [2, 3] does not match [-1, 4] (-1 = any)"),
        (RANKER_MODEL, features([0, 4]), 400, "inputs: the batch dimension must be at least 1"),
        (RANKER_MODEL, features([1, 4], name="x"), 400,
         "inputs: model 'ranker' takes ['features'], got ['x']"),
        (RANKER_MODEL, features([65, 4]), 413,
         "inputs: batch of 65 rows; model 'ranker' takes at most 64 (max_inputs_per_request)"),
        ("nope", features([1, 4]), 404, "model 'nope' is not in the repository"),
    ],
)
async def test_refusals_have_their_status_and_name_the_field_and_limit(
    served: Served, model: str, doc: dict[str, Any], status: int, error: str
) -> None:
    r = await infer(served, doc, model)
    assert r.headers["content-type"] == "application/json"
    assert (r.status_code, r.json()) == (status, {"error": error})


async def test_invalid_utf8_in_a_binary_text_is_a_400(served: Served) -> None:
    blob = struct.pack("<I", len(BAD_UTF8)) + BAD_UTF8
    head = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(blob)}}]})
    r = await served.client.post(f"/v2/models/{TINY_MODEL}/infer", content=head + blob,
                                 headers={"Inference-Header-Content-Length": str(len(head))})
    assert (r.status_code, r.json()) == (400, {"error": "inputs ('text').data[0]: is not valid "
                                                        "UTF-8"})
