"""Per-request observability of the real app, in-process: the request counter, X-Request-ID,
the JSON access log and Server-Timing, on successes and on every kind of error."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio
import tritonclient.http as triton
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.api.access import AccessMiddleware
from server.metrics import HTTP_PRECREATED_ROUTES, HTTP_PRECREATED_STATUSES, Metrics
from tests.api.conftest import TINY_MODEL, Served, serve_in_process

pytestmark = pytest.mark.asyncio(loop_scope="module")  # one app and loop for the module

MAX_BODY = 1024
#: Never to appear in a log line: the access log carries no input text.
SECRET_TEXT = "zanzibar-quokka-7731 my passport number is 123"
MADE_ID = re.compile(r"[0-9a-f]{16}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tiny_repository: Path) -> AsyncIterator[Served]:
    async with serve_in_process(tiny_repository, max_request_bytes=MAX_BODY) as s:
        yield s


def stages(header: str) -> dict[str, float]:
    """``Server-Timing`` as {name: milliseconds}; fails on any malformed entry."""
    found = {}
    for entry in header.split(","):
        match = re.fullmatch(r"\s*([a-z]+);dur=(\d+\.\d+)\s*", entry)
        assert match, f"malformed Server-Timing entry {entry!r} in {header!r}"
        found[match[1]] = float(match[2])
    return found


def delta(before: dict[tuple[str, str, str], float], after: dict[tuple[str, str, str], float]
          ) -> dict[tuple[str, str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


async def test_counter_children_exist_with_zeros_before_any_request(tiny_repository: Path) -> None:
    app_metrics = Metrics()
    # model="" exists from the start, before any model has loaded ...
    samples = {k: v for k, v in _counts(app_metrics).items()}
    expected_blank = {("", r, s) for r in HTTP_PRECREATED_ROUTES for s in HTTP_PRECREATED_STATUSES}
    assert set(samples) == expected_blank and set(samples.values()) == {0.0}
    # ... and each served model's children once it has loaded, still at zero.
    async with serve_in_process(tiny_repository) as s:
        counts = await s.counts()
    expected = expected_blank | {
        (TINY_MODEL, r, st) for r in HTTP_PRECREATED_ROUTES for st in HTTP_PRECREATED_STATUSES
    }
    assert set(counts) == expected  # the /metrics scrape itself is counted after it answered
    assert set(counts.values()) == {0.0}
    assert len(expected) == 2 * 2 * 8


def _counts(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["model"], s.labels["route"], s.labels["status"]): s.value
        for family in metrics.registry.collect() for s in family.samples
        if s.name == "sluice_http_requests_total"
    }


async def test_requests_are_counted_by_model_route_and_status(served: Served) -> None:
    c = served.client
    before = await served.counts()
    assert (await c.post(f"/v1/models/{TINY_MODEL}/classify", json={"inputs": ["hi"]})).status_code == 200
    assert (await c.post(f"/v1/models/{TINY_MODEL}/classify", content=b"{not json")).status_code == 400
    too_big = {"inputs": ["x" * (2 * MAX_BODY)]}
    assert (await c.post(f"/v1/models/{TINY_MODEL}/classify", json=too_big)).status_code == 413
    assert (await c.post(f"/v2/models/{TINY_MODEL}/infer", json={"inputs": []})).status_code == 400
    ghost = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
    assert (await c.post("/v2/models/no-such-model/infer", json=ghost)).status_code == 404
    assert (await c.post("/v1/models/another-ghost/classify", json={"inputs": ["a"]})).status_code == 404
    assert (await c.get("/v2/this/is/not/a/route")).status_code == 404
    assert (await c.get(f"/v2/models/{TINY_MODEL}")).status_code == 200
    assert (await c.get(f"/v2/models/{TINY_MODEL}/ready")).status_code == 200
    assert (await c.get("/v2/health/ready")).status_code == 200
    after = await served.counts()
    assert delta(before, after) == {
        (TINY_MODEL, "classify", "200"): 1,
        (TINY_MODEL, "classify", "400"): 1,
        (TINY_MODEL, "classify", "413"): 1,
        (TINY_MODEL, "infer", "400"): 1,
        ("", "infer", "404"): 1,  # names outside the registry never become label values
        ("", "classify", "404"): 1,
        ("", "other", "404"): 1,
        (TINY_MODEL, "metadata", "200"): 1,
        (TINY_MODEL, "ready", "200"): 1,
        ("", "health", "200"): 1,
        ("", "metrics", "200"): 1,  # the first scrape, counted once it had answered
    }
    assert not any(m == "no-such-model" for m, _, _ in after)


async def test_access_log_line_carries_the_clients_request_id_and_never_the_text(
    served: Served,
) -> None:
    r = await served.client.post(
        f"/v1/models/{TINY_MODEL}/classify", params={"version": "1"},
        json={"inputs": [SECRET_TEXT, "fine"]}, headers={"X-Request-ID": "order-42/retry.1"},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "order-42/retry.1"
    line = served.record_of("order-42/retry.1")
    assert set(line) == {
        "time", "request_id", "method", "path", "model", "version", "status", "queue_us",
        "prepare_us", "compute_us", "total_us", "batch_size", "client",
    }
    assert line["method"] == "POST"
    assert line["path"] == "/v1/models/{model}/classify"  # the template: no query, no name
    assert (line["model"], line["version"], line["status"]) == (TINY_MODEL, "1", 200)
    assert line["batch_size"] >= 2 and line["compute_us"] > 0
    assert 0 <= line["queue_us"] <= line["total_us"]
    assert line["queue_us"] + line["prepare_us"] + line["compute_us"] <= line["total_us"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["client"] == "127.0.0.1:123"  # httpx.ASGITransport's client address
    assert not any("zanzibar" in text or "passport" in text for text in served.access.lines)


async def test_a_request_id_is_made_when_missing_or_invalid(served: Served) -> None:
    c = served.client
    for headers in ({}, {"X-Request-ID": "x" * 129}, {"X-Request-ID": "has space"},
                    {"X-Request-ID": ""}):
        r = await c.get("/v2/health/live", headers=headers)
        made = r.headers["x-request-id"]
        assert MADE_ID.fullmatch(made), (headers, made)
        assert served.record_of(made)["path"] == "/v2/health/live"
    first, second = (await c.get("/v2")).headers, (await c.get("/v2")).headers
    assert first["x-request-id"] != second["x-request-id"]


async def test_errors_before_the_route_runs_echo_the_id_and_are_logged(served: Served) -> None:
    c = served.client
    cases = [
        ("POST", f"/v2/models/{TINY_MODEL}/infer", b"x" * (2 * MAX_BODY), 413,
         "/v2/models/{model}/infer"),
        ("POST", f"/v2/models/{TINY_MODEL}/infer", b"[1, 2", 400, "/v2/models/{model}/infer"),
        ("GET", "/v2/nowhere?token=abc", b"", 404, "/v2/nowhere"),
        ("GET", f"/v2/models/{TINY_MODEL}/infer", b"", 405, "/v2/models/{model}/infer"),
    ]
    for i, (method, path, body, status, logged_path) in enumerate(cases):
        rid = f"err-{i}"
        r = await c.request(method, path, content=body, headers={"X-Request-ID": rid})
        assert r.status_code == status, r.text
        assert r.headers["x-request-id"] == rid
        assert "error" in r.json() or status == 405
        line = served.record_of(rid)
        assert (line["status"], line["path"]) == (status, logged_path)


async def test_server_timing_on_classify_and_json_infer(served: Served) -> None:
    c = served.client
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}]}
    responses = [
        await c.post(f"/v1/models/{TINY_MODEL}/classify", json={"inputs": ["one", "two"]}),
        await c.post(f"/v2/models/{TINY_MODEL}/infer", json=body),
    ]
    for r in responses:
        assert r.status_code == 200
        timing = stages(r.headers["server-timing"])
        assert set(timing) == {"queue", "prepare", "compute", "total"}
        assert 0 <= timing["queue"] <= timing["total"]
        assert timing["compute"] > 0
        assert timing["queue"] + timing["prepare"] + timing["compute"] <= timing["total"]
        line = served.record_of(r.headers["x-request-id"])
        assert line["compute_us"] == pytest.approx(timing["compute"] * 1000, abs=1)
        assert line["batch_size"] >= 2
    # Other routes carry no Server-Timing.
    assert "server-timing" not in (await c.get(f"/v2/models/{TINY_MODEL}")).headers


async def test_server_timing_and_log_on_binary_infer(served: Served) -> None:
    texts = np.array([b"binary one", b"binary two", b"three"], dtype=object)
    inp = triton.InferInput("text", [3], "BYTES")
    inp.set_data_from_numpy(texts, binary_data=True)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True)]
    body, json_size = triton.InferenceServerClient.generate_request_body([inp], outputs=outputs)
    headers = {"Inference-Header-Content-Length": str(json_size), "X-Request-ID": "binary-1",
               "Content-Type": "application/octet-stream"}
    r = await served.client.post(f"/v2/models/{TINY_MODEL}/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    result = triton.InferenceServerClient.parse_response_body(
        r.content, header_length=int(r.headers["inference-header-content-length"]))
    assert result.as_numpy("probabilities").shape == (3, 3)
    timing = stages(r.headers["server-timing"])
    assert timing["compute"] > 0 and timing["queue"] <= timing["total"]
    line = served.record_of("binary-1")
    assert (line["path"], line["status"], line["batch_size"] >= 3) == (
        "/v2/models/{model}/infer", 200, True)


async def test_access_log_off_writes_nothing_but_keeps_ids_timing_and_counts(
    tiny_repository: Path,
) -> None:
    async with serve_in_process(tiny_repository, access_log=False) as s:
        r = await s.client.post(f"/v1/models/{TINY_MODEL}/classify", json={"inputs": ["hi"]},
                                headers={"X-Request-ID": "quiet-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "quiet-1"
        assert stages(r.headers["server-timing"])["compute"] > 0
        assert (await s.counts())[(TINY_MODEL, "classify", "200")] == 1
        assert s.access.lines == []


async def test_unhandled_exception_still_answers_500_with_the_id_and_counts_it() -> None:
    async def explode(request: Request) -> Response:
        raise RuntimeError("boom")

    metrics = Metrics()
    app = Starlette(routes=[Route("/boom", explode)])
    app.add_middleware(AccessMiddleware, metrics=metrics, access_log=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "boom-1"
    assert r.json() == {"error": "internal server error"}
    assert _counts(metrics)[("", "other", "500")] == 1
