"""The hot routes (``server.api.hot``): every request they take answers exactly as the router
would (status, body, headers), and the requests they do not take still reach the router."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from server.api.hot import SluiceApp, hot_route
from server.app import create_app
from server.settings import Settings
from tests.api.conftest import (
    INFERENCE_MODELS,
    LOAD_TIMEOUT_S,
    PLUGINS,
    RANKER_MODEL,
    TINY_MODEL,
    _Loaded,
)

ASYNC = pytest.mark.asyncio(loop_scope="module")  # one app and loop for the module

#: Headers whose values differ between two answers of one request (timings).
VARYING = {"server-timing"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(inference_repository: Path) -> AsyncIterator[SluiceApp]:
    app = create_app(Settings(model_repository=inference_repository, models=INFERENCE_MODELS,
                              engine_threads=1, engine_plugins=PLUGINS, max_request_bytes=4096))
    sluice, loaded = logging.getLogger("sluice"), _Loaded()  # set at "model loading finished"
    level = sluice.level
    sluice.addHandler(loaded)
    sluice.setLevel(logging.INFO)
    try:
        async with app.router.lifespan_context(app):
            async with asyncio.timeout(LOAD_TIMEOUT_S):
                await loaded.event.wait()
            yield app
    finally:
        sluice.setLevel(level)
        sluice.removeHandler(loaded)


def _client(app: SluiceApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sluice")


async def _both(app: SluiceApp, method: str, path: str, **kwargs: Any) -> tuple[
        httpx.Response, httpx.Response]:
    """The same request answered by the hot path and by the router."""
    hot = app.hot
    assert hot is not None
    headers = {"X-Request-ID": "same-id", **kwargs.pop("headers", {})}
    async with _client(app) as client:
        fast = await client.request(method, path, headers=headers, **kwargs)
        app.hot = None
        try:
            slow = await client.request(method, path, headers=headers, **kwargs)
        finally:
            app.hot = hot
    return fast, slow


def _binary_text_body(texts: list[str]) -> tuple[bytes, dict[str, str]]:
    blob = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    head = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                                     "parameters": {"binary_data_size": len(blob)}}],
                         "outputs": [{"name": "probabilities",
                                      "parameters": {"binary_data": True}}]})
    return head + blob, {"Inference-Header-Content-Length": str(len(head)),
                         "Content-Type": "application/octet-stream"}


BINARY, BINARY_HEADERS = _binary_text_body(["my bag never arrived", "thanks!"])
TEXT_INPUT = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["late again"]}
CASES: list[tuple[str, dict[str, Any], int]] = [
    (f"/v1/models/{TINY_MODEL}/classify", {"json": {"inputs": ["late again", "ok"]}}, 200),
    (f"/v1/models/{TINY_MODEL}/classify?version=1", {"json": {"inputs": ["x"], "top_k": 2}}, 200),
    (f"/v1/models/{TINY_MODEL}/classify?version=9", {"json": {"inputs": ["x"]}}, 404),
    (f"/v1/models/{TINY_MODEL}/classify", {"content": b"{not json"}, 400),
    (f"/v1/models/{TINY_MODEL}/classify", {"json": {"inputs": ["x"], "top_k": 9}}, 400),
    (f"/v1/models/{TINY_MODEL}/classify", {"json": {"inputs": ["x" * 5000]}}, 413),
    (f"/v1/models/{TINY_MODEL}/classify", {"json": {"inputs": [], "extra": 1}}, 400),
    ("/v1/models/nope/classify", {"json": {"inputs": ["x"]}}, 404),
    (f"/v1/models/{RANKER_MODEL}/classify", {"json": {"inputs": ["x"]}}, 400),
    ("/v1/models/..%2Fetc/classify", {"json": {"inputs": ["x"]}}, 400),
    (f"/v2/models/{TINY_MODEL}/infer", {"json": {"inputs": [TEXT_INPUT]}}, 200),
    (f"/v2/models/{TINY_MODEL}/versions/1/infer", {"json": {"inputs": [TEXT_INPUT]}}, 200),
    (f"/v2/models/{TINY_MODEL}/versions/x1/infer", {"json": {"inputs": [TEXT_INPUT]}}, 400),
    (f"/v2/models/{TINY_MODEL}/infer", {"content": BINARY, "headers": BINARY_HEADERS}, 200),
    (f"/v2/models/{TINY_MODEL}/infer", {"content": BINARY, "headers": {
        "Inference-Header-Content-Length": "99999"}}, 400),
    (f"/v2/models/{TINY_MODEL}/infer", {"json": {"inputs": [{**TEXT_INPUT, "shape": [2]}]}},
     400),
    (f"/v2/models/{TINY_MODEL}/infer", {"content": b"x", "headers": {
        "Content-Type": "text/plain"}}, 415),
]


@ASYNC
@pytest.mark.parametrize(("path", "kwargs", "status"), CASES)
async def test_the_hot_path_answers_as_the_router_does(
    app: SluiceApp, path: str, kwargs: dict[str, Any], status: int
) -> None:
    fast, slow = await _both(app, "POST", path, **kwargs)
    assert (fast.status_code, slow.status_code) == (status, status)
    assert fast.content == slow.content
    assert {k: v for k, v in fast.headers.items() if k not in VARYING} == {
        k: v for k, v in slow.headers.items() if k not in VARYING}
    assert fast.headers["x-request-id"] == "same-id"
    assert ("server-timing" in fast.headers) == ("server-timing" in slow.headers)


@ASYNC
async def test_the_router_still_answers_what_the_hot_path_leaves(app: SluiceApp) -> None:
    async with _client(app) as client:
        wrong_method = await client.get(f"/v1/models/{TINY_MODEL}/classify")
        slash = await client.post(f"/v1/models/{TINY_MODEL}/classify/", json={"inputs": ["x"]})
    assert wrong_method.status_code == 405
    assert slash.status_code in (307, 404)  # the router's answer, whatever it is
    fast, slow = await _both(app, "POST", f"/v1/models/{TINY_MODEL}/classify/",
                             json={"inputs": ["x"]})
    assert fast.status_code == slow.status_code


@ASYNC
async def test_the_hot_routes_are_documented(app: SluiceApp) -> None:
    paths = app.openapi()["paths"]
    assert "post" in paths["/v1/models/{model}/classify"]
    assert "post" in paths["/v2/models/{model}/infer"]


@ASYNC
async def test_hot_requests_are_counted_under_their_route(app: SluiceApp) -> None:
    def count(text: str, route: str, status: str) -> float:
        for line in text.splitlines():
            if line.startswith("sluice_http_requests_total{") and f'route="{route}"' in line \
                    and f'status="{status}"' in line and f'model="{TINY_MODEL}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async with _client(app) as client:
        before = (await client.get("/metrics")).text
        await client.post(f"/v1/models/{TINY_MODEL}/classify", json={"inputs": ["x"]})
        await client.post(f"/v2/models/{TINY_MODEL}/infer", json={"inputs": [TEXT_INPUT]})
        after = (await client.get("/metrics")).text
    assert count(after, "classify", "200") == count(before, "classify", "200") + 1
    assert count(after, "infer", "200") == count(before, "infer", "200") + 1


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/models/m/classify", ("classify", "m", None)),
    ("/v2/models/m/infer", ("infer", "m", None)),
    ("/v2/models/m/versions/3/infer", ("infer", "m", "3")),
    ("/v1/models/m/classify/", None),
    ("/v1/models//classify", None),
    ("/v2/models/m/versions//infer", None),
    ("/v2/models/m/ready", None),
    ("/v1/models/m/rank", None),
    ("x/v1/models/m/classify", None),
])
def test_hot_route_takes_exactly_the_three_templates(
    path: str, expected: tuple[str, str, str | None] | None
) -> None:
    assert hot_route(path) == expected
