"""A real ``sluice serve`` process on loopback, spoken to with httpx and tritonclient."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.e2e

TEXTS = [
    "my flight was cancelled and nobody at the gate could tell me why",
    "thanks!",
    "the crew on flight 221 were wonderful, best trip in years",
    "lost bag",
    "is there wifi on the 7am to Denver?",
]


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def metric(text: str, name: str, model: str, **labels: str) -> float:
    want = {"model": model, "version": "1", **labels}
    found = [s.value for s in samples(text)
             if s.name == name and all(s.labels.get(k) == v for k, v in want.items())]
    assert found, f"{name} {want} missing from /metrics"
    return float(found[0])


def test_health_and_server_metadata(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        meta = c.get("/v2").json()
        assert meta["name"] == "sluice"
        assert "binary_tensor_data" in meta["extensions"]


def test_tritonclient_metadata_and_infer_binary_and_json(server: ServerProcess) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("tiny-sentiment")
    meta = client.get_model_metadata("tiny-sentiment")
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"] for o in meta["outputs"]} == {"probabilities", "label"}

    results = {}
    for binary in (True, False):
        inp = triton.InferInput("text", [len(TEXTS)], "BYTES")
        inp.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object),
                                binary_data=binary)
        outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary),
                   triton.InferRequestedOutput("label", binary_data=binary)]
        result = client.infer("tiny-sentiment", [inp], outputs=outputs)
        probs = result.as_numpy("probabilities")
        labels = result.as_numpy("label")
        assert probs.shape == (len(TEXTS), 3)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert labels.shape == (len(TEXTS),)
        names = ("negative", "neutral", "positive")
        assert [lbl.decode() if isinstance(lbl, bytes) else lbl for lbl in labels] == [
            names[i] for i in probs.argmax(axis=1)
        ]
        results[binary] = probs
    assert np.allclose(results[True], results[False], atol=1e-6)

    # no outputs named: tritonclient asks for every output in binary
    inp = triton.InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(np.array([b"hello"], dtype=object))
    result = client.infer("tiny-sentiment", [inp])
    assert result.as_numpy("probabilities").shape == (1, 3)
    client.close()


def test_classification_extension(server: ServerProcess) -> None:
    body = {
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": TEXTS[:2]}],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}],
    }
    r = httpx.post(f"{server.url}/v2/models/tiny-sentiment/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [2, 2] and out["datatype"] == "BYTES"
    score, index, label = out["data"][0].split(":")
    assert label in {"negative", "neutral", "positive"} and 0 <= int(index) < 3
    assert 0.0 <= float(score) <= 1.0


def test_classify_keeps_order_and_matches_infer(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/v1/models/tiny-sentiment/classify", json={"inputs": TEXTS, "top_k": 3})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["model_name"] == "tiny-sentiment" and doc["model_version"] == "1"
        assert len(doc["predictions"]) == len(TEXTS)
        singles = [
            c.post("/v1/models/tiny-sentiment/classify", json={"inputs": [t], "top_k": 3}).json()
            for t in TEXTS
        ]
    for batched, single in zip(doc["predictions"], singles, strict=True):
        assert [p["label"] for p in batched] == [p["label"] for p in single["predictions"][0]]
        for a, b in zip(batched, single["predictions"][0], strict=True):
            assert abs(a["score"] - b["score"]) < 1e-4
        scores = [p["score"] for p in batched]
        assert scores == sorted(scores, reverse=True)


def test_torch_and_onnx_models_agree(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        a = c.post("/v1/models/tiny-sentiment/classify", json={"inputs": TEXTS, "top_k": 3})
        b = c.post("/v1/models/tiny-sentiment-torch/classify", json={"inputs": TEXTS, "top_k": 3})
    assert a.status_code == b.status_code == 200
    for row_a, row_b in zip(a.json()["predictions"], b.json()["predictions"], strict=True):
        sa = {p["label"]: p["score"] for p in row_a}
        sb = {p["label"]: p["score"] for p in row_b}
        assert all(abs(sa[k] - sb[k]) < 1e-4 for k in sa)


def test_concurrent_requests_are_batched_in_order(server: ServerProcess) -> None:
    metrics_before = httpx.get(f"{server.url}/metrics").text
    count0 = metric(metrics_before, "nv_inference_count_total", "tiny-sentiment")
    exec0 = metric(metrics_before, "nv_inference_exec_count_total", "tiny-sentiment")
    n = 40

    async def run() -> list[dict[str, object]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            async def one(i: int) -> dict[str, object]:
                r = await c.post("/v1/models/tiny-sentiment/classify",
                                 json={"inputs": [TEXTS[i % len(TEXTS)]], "top_k": 3})
                assert r.status_code == 200, r.text
                doc: dict[str, object] = r.json()
                return doc
            return await asyncio.gather(*(one(i) for i in range(n)))

    docs = asyncio.run(run())
    with httpx.Client(base_url=server.url) as c:
        reference = [
            c.post("/v1/models/tiny-sentiment/classify", json={"inputs": [t], "top_k": 3}).json()
            for t in TEXTS
        ]
    for i, doc in enumerate(docs):
        ref = reference[i % len(TEXTS)]["predictions"][0]
        got = doc["predictions"][0]  # type: ignore[index]
        assert [p["label"] for p in got] == [p["label"] for p in ref]

    after = httpx.get(f"{server.url}/metrics").text
    count = metric(after, "nv_inference_count_total", "tiny-sentiment") - count0
    execs = metric(after, "nv_inference_exec_count_total", "tiny-sentiment") - exec0
    assert count == n + len(TEXTS)
    assert execs < count, f"{execs} executions for {count} inferences: nothing was batched"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/models/nope/classify", {"inputs": ["x"]}, 404, "nope"),
        ("/v1/models/tiny-sentiment/classify", {"inputs": "x", "top_k": 9}, 400, "top_k"),
        ("/v1/models/tiny-sentiment/classify", {"inputs": [1]}, 400, "inputs[0]"),
        ("/v1/models/tiny-sentiment/classify", {"texts": ["x"]}, 400, "texts"),
        ("/v1/models/tiny-sentiment/classify", {"inputs": []}, 400, "at least one"),
        ("/v1/models/tiny-sentiment/classify", {"inputs": ["x"] * 65}, 413,
         "max_inputs_per_request"),
        ("/v2/models/tiny-sentiment/infer",
         {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]},
         400, "shape [2] needs 2"),
        ("/v2/models/tiny-sentiment/infer",
         {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
         400, "must be BYTES"),
        ("/v2/models/tiny-sentiment/versions/7/infer",
         {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
         404, "version 7"),
        ("/v2/models/tiny-sentiment/infer",
         {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
          "parameters": {"timeout": 1}},
         504, "deadline"),
    ],
)
def test_errors_have_status_and_name_the_field(
    server: ServerProcess, path: str, body: object, status: int, needle: str
) -> None:
    r = httpx.post(server.url + path, json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_malformed_json_and_oversized_body(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/v1/models/tiny-sentiment/classify", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    big = b'{"inputs": ["' + b"a" * (9 * 1024 * 1024) + b'"]}'
    r = httpx.post(f"{server.url}/v1/models/tiny-sentiment/classify", content=big)
    assert r.status_code == 413 and "max_request_bytes" in r.json()["error"]


def test_metrics_expose_triton_names_and_histograms(server: ServerProcess) -> None:
    httpx.post(f"{server.url}/v1/models/tiny-sentiment/classify", json={"inputs": ["hi"]})
    late = httpx.post(f"{server.url}/v2/models/tiny-sentiment/infer", json={
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
        "parameters": {"timeout": 1}})
    assert late.status_code == 504, late.text
    text = httpx.get(f"{server.url}/metrics").text
    for name in ("nv_inference_request_success_total", "nv_inference_count_total",
                 "nv_inference_exec_count_total"):
        assert metric(text, name, "tiny-sentiment") >= 1
    assert metric(text, "nv_inference_pending_request_count", "tiny-sentiment") == 0
    assert metric(text, "sluice_batch_size_count", "tiny-sentiment") >= 1
    assert metric(text, "sluice_padding_ratio_count", "tiny-sentiment") >= 1
    # the 504 (parameters.timeout=1) counts as a rejected request, as in Triton
    assert metric(text, "nv_inference_request_failure_total", "tiny-sentiment",
                  reason="REJECTED") >= 1


def test_openapi_documents_examples(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    body = spec["paths"]["/v1/models/{model}/classify"]["post"]["requestBody"]
    assert body["content"]["application/json"]["example"]["inputs"]
    infer = spec["paths"]["/v2/models/{model}/infer"]["post"]["requestBody"]
    assert infer["content"]["application/json"]["example"]["inputs"][0]["datatype"] == "BYTES"
