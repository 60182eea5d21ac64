"""KServe v2 / Triton HTTP routes: health, metadata, infer (JSON and binary); repository control
lives in ``server.api.control``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive

from server.api import schemas as oas
from server.api.body import off_the_loop, read_body, unless_disconnected
from server.errors import ModelNotReady
from server.protocol import v2_adapter
from server.protocol.v2 import HEADER_LENGTH, decode_limits, decode_request, parse_header_length
from server.protocol.v2_encode import EncodedResponse
from server.repository.loader import ModelVersion
from server.state import ServerState

PLATFORM = {"onnxruntime": "onnxruntime_onnx", "torch": "pytorch_torch", "tensorrt": "tensorrt_plan"}
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "statistics", "sluice"]

INFER_EXAMPLE = {
    "inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES",
         "data": ["my flight was cancelled again", "thanks for the upgrade!"]}
    ],
    "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"classification": 2}}],
}


INFER_PATH = "/v2/models/{model}/infer"
INFER_VERSION_PATH = "/v2/models/{model}/versions/{version}/infer"


async def infer_encoded(
    state: ServerState, model: str, version: str | None, body: bytes, header_length: str | None,
    receive: Receive,
) -> EncodedResponse:
    """The response of a v2 infer request (its body read; ``header_length``: the raw
    ``Inference-Header-Content-Length``), or a ``SluiceError``: the one implementation behind
    the routes and the hot path (``server.api.hot``)."""
    length = parse_header_length(header_length, len(body))
    decoded = await off_the_loop(len(body), decode_request, body, length,
                                 decode_limits(state.settings))
    return await unless_disconnected(
        receive, v2_adapter.infer(state.service, model, version, decoded))


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _metadata(model: ModelVersion, versions: list[str]) -> dict[str, Any]:
    def tensors(specs: Any) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]

    return {
        "name": model.name,
        "versions": versions,
        "platform": PLATFORM.get(model.config.engine.backend, "sluice_plugin"),
        "inputs": tensors(model.inputs),
        "outputs": tensors(model.outputs),
        "parameters": {"task": model.config.task, "labels": list(model.config.labels)},
    }


def build_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["KServe v2"])
    registry = state.registry

    @router.get("", summary="Server metadata",
                responses={200: {"model": oas.ServerMetadata}, **oas.errors(*oas.COMMON)})
    async def server_metadata() -> Response:
        return _json({"name": "sluice", "version": state.version, "extensions": EXTENSIONS})

    @router.get("/health/live", summary="Liveness: 200 while the process runs",
                responses={200: {"model": oas.Live}, **oas.errors(*oas.COMMON)})
    async def live() -> Response:
        return _json({"live": True})

    @router.get("/health/ready",
                summary="Readiness: 200 once every model is serving, 503 from the shutdown signal",
                responses={200: {"model": oas.Ready},
                           503: {"model": oas.Ready, "description": "Not ready"},
                           **oas.errors(*(s for s in oas.COMMON if s != 503))})
    async def ready() -> Response:
        ok = registry.is_ready() and state.lifecycle.ready
        return _json({"ready": ok}, 200 if ok else 503)

    def versions_of(name: str) -> list[str]:
        entry = next((e for e in registry.entries() if e.name == name), None)
        return [str(v) for v in sorted(entry.versions)] if entry else []

    @router.get("/models/{model}", summary="Model metadata",
                responses={200: {"model": oas.ModelMetadata}, **oas.errors(*oas.MODEL)})
    @router.get("/models/{model}/versions/{version}", summary="Model version metadata",
                responses={200: {"model": oas.ModelMetadata}, **oas.errors(*oas.MODEL)})
    async def model_metadata(model: str, version: str | None = None) -> Response:
        loaded = registry.get(model, version)
        return _json(_metadata(loaded, versions_of(model)))

    @router.get("/models/{model}/ready", summary="Model readiness",
                responses={200: {"model": oas.ModelReady}, **oas.errors(*oas.MODEL)})
    @router.get("/models/{model}/versions/{version}/ready", summary="Model version readiness",
                responses={200: {"model": oas.ModelReady}, **oas.errors(*oas.MODEL)})
    async def model_ready(model: str, version: str | None = None) -> Response:
        loaded = registry.get(model, version)  # raises 404 / 503
        if not loaded.available:  # engine calls stuck past the watchdog
            raise ModelNotReady(f"model '{model}' is unavailable: {loaded.batcher.unavailable_reason}")
        return _json({"name": model, "ready": True})

    @router.get("/models/{model}/config", summary="Model configuration (config.yaml, resolved)",
                responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}},
                           **oas.errors(*oas.MODEL)})
    @router.get("/models/{model}/versions/{version}/config", include_in_schema=False)
    async def model_config(model: str, version: str | None = None) -> Response:
        loaded = registry.get(model, version)
        return _json({"name": model, **loaded.config.model_dump(mode="json")})

    @router.get("/models/{model}/stats", summary="Model statistics",
                responses={200: {"model": oas.ModelStats}, **oas.errors(*oas.MODEL)})
    @router.get("/models/{model}/versions/{version}/stats", include_in_schema=False)
    async def model_stats(model: str, version: str | None = None) -> Response:
        loaded = registry.get(model, version)
        b = loaded.batcher
        return _json({"model_stats": [{
            "name": model, "version": str(loaded.version),
            "pending_requests": b.pending_requests, "pending_items": b.pending_items,
            "load_seconds": round(loaded.load_seconds, 3),
        }]})

    @router.post(
        INFER_PATH.removeprefix("/v2"),
        summary="Inference (JSON tensors, or the binary tensor extension)",
        openapi_extra=oas.infer_request_body(INFER_EXAMPLE),
        responses=oas.infer_responses(),
    )
    @router.post(INFER_VERSION_PATH.removeprefix("/v2"), include_in_schema=False)
    async def infer(request: Request, model: str, version: str | None = None) -> Response:
        if state.draining:
            raise ModelNotReady("server is shutting down")
        body = await read_body(request, state.settings.max_request_bytes)
        encoded = await infer_encoded(state, model, version, body,
                                      request.headers.get(HEADER_LENGTH), request.receive)
        if encoded.header_length is None:
            return Response(encoded.body, media_type="application/json")
        return Response(
            encoded.body, media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(encoded.header_length)},
        )

    return router
