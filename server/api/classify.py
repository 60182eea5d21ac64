"""``POST /v1/models/{model}/classify``: texts in, labels with scores out, for apps."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.types import Receive

from server.api import schemas as oas
from server.api.body import read_body, unless_disconnected
from server.domain import TextRequest, TextResult
from server.errors import InvalidInput, ModelNotReady
from server.service import InferenceService
from server.state import ServerState


class ClassifyRequest(BaseModel):
    """Documentation only: the body is validated by hand (cheaper on the hot path)."""

    inputs: list[str] = Field(min_length=1, description="Texts to classify, at most the "
                              "model's max_inputs_per_request (default 64).")
    top_k: int = Field(default=1, ge=1, description="Labels to return per text, best first.")
    timeout_us: int | None = Field(default=None, ge=0, description="Deadline in microseconds.")
    priority: int = Field(default=0, ge=0, description="Priority level: 1 is the highest, up "
                          "to the model's priority_levels; 0 means the model's default level.")

    model_config = {"json_schema_extra": {"examples": [
        {"inputs": ["my bag never arrived", "great crew, thank you!"], "top_k": 2}
    ]}}


class Label(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[list[Label]] = Field(description="One list per input text, in order.")


def _parse(body: bytes, model: str, version: str | None) -> TextRequest:
    """The request body as the service's request (every wire check here, none in the service)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"body: not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise InvalidInput("body: must be a JSON object with 'inputs'")
    unknown = set(doc) - {"inputs", "top_k", "timeout_us", "priority"}
    if unknown:
        raise InvalidInput(f"body: unknown fields {sorted(unknown)}")
    texts = doc.get("inputs")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list):
        raise InvalidInput("inputs: must be a list of strings")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInput(f"inputs[{i}]: must be a string")
    top_k = doc.get("top_k", 1)
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise InvalidInput("top_k: must be an integer")
    timeout = doc.get("timeout_us")
    if timeout is not None and (not isinstance(timeout, int) or timeout < 0):
        raise InvalidInput("timeout_us: must be a non-negative integer")
    priority = doc.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise InvalidInput("priority: must be an integer within 0..priority_levels (1 is the "
                           "highest, 0 the model's default level)")
    return TextRequest(model, version, tuple(texts), top_k, timeout or None, priority)


def _document(result: TextResult) -> bytes:
    return orjson.dumps({
        "model_name": result.model,
        "model_version": str(result.version),
        "predictions": [[{"label": p.label, "score": p.score} for p in row]
                        for row in result.predictions()],
    })


CLASSIFY_PATH = "/v1/models/{model}/classify"


async def _classify(service: InferenceService, request: TextRequest) -> bytes:
    model = service.model(request.model, request.version)
    if not model.is_text:  # the route to use instead is this protocol's business
        raise InvalidInput(f"model '{model.name}' is a tensor model; "
                           f"use /v2/models/{model.name}/infer")
    return _document(await service.classify(request))


async def classify_document(
    state: ServerState, model: str, version: str | None, body: bytes, receive: Receive
) -> bytes:
    """The response body of a classify request (its body read), or a ``SluiceError``: the one
    implementation behind the route and the hot path (``server.api.hot``)."""
    parsed = _parse(body, model, version)
    return await unless_disconnected(receive, _classify(state.service, parsed))


def build_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["classify"])
    schema: dict[str, Any] = ClassifyRequest.model_json_schema()

    @router.post(
        CLASSIFY_PATH.removeprefix("/v1"),
        summary="Classify texts",
        response_model=ClassifyResponse,
        responses=oas.errors(*oas.INFERENCE),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": schema, "example": schema["examples"][0]}}}},
    )
    async def classify(request: Request, model: str) -> Response:
        if state.draining:
            raise ModelNotReady("server is shutting down")
        body = await read_body(request, state.settings.max_request_bytes)
        doc = await classify_document(state, model, request.query_params.get("version"), body,
                                      request.receive)
        return Response(doc, media_type="application/json")

    return router
