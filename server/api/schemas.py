"""OpenAPI descriptions of the request and response bodies (documentation and fuzzing only).

Nothing here parses a request: the routes read raw bodies and :mod:`server.protocol.v2` (and
``server.api.classify._parse``) validate them by hand. These models only tell ``/openapi.json``
what a body looks like and which statuses each route answers, fully enough for schemathesis to
generate requests and check every answer against the declaration.

The binary tensor extension (a JSON header followed by raw tensor bytes, its length in the
``Inference-Header-Content-Length`` header) cannot be described by OpenAPI; it is fuzzed
in-process (``tests/fuzz/test_decoder_fuzz.py``). Its ``application/octet-stream`` response is
declared so that a binary answer conforms.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                   "INT64", "FP16", "FP32", "FP64", "BYTES"]

#: An element of ``data``: a scalar, or a nested list (row-major, flattened by the server).
#: Not recursive on purpose: generators (schemathesis) handle recursive ``$ref``s poorly.
_DATA_ITEM: dict[str, Any] = {"anyOf": [
    {"type": "number"}, {"type": "string"}, {"type": "boolean"},
    {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "string"},
                                          {"type": "boolean"}, {"type": "array"}]}},
]}


class ErrorBody(BaseModel):
    """Every error answer: one message naming the field and the limit."""

    error: str


class TensorParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    binary_data_size: int | None = Field(default=None, ge=0, description="Bytes of this "
                                         "tensor in the binary part (binary extension only).")


class InferInputTensor(BaseModel):
    name: str = Field(min_length=1)
    shape: list[int] = Field(description="Dimensions; their product is the element count.")
    datatype: Datatype
    parameters: TensorParameters | None = None
    data: list[Any] | None = Field(default=None, description="Elements, flat or nested "
                                   "row-major; omitted when parameters.binary_data_size is set.",
                                   json_schema_extra={"items": _DATA_ITEM})


class OutputParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    binary_data: bool | None = Field(default=None, description="Return this output binary.")
    classification: int | None = Field(default=None, ge=0, description="Top-k as "
                                       "'score:index:label' strings instead of the tensor.")


class InferRequestedOutput(BaseModel):
    name: str
    parameters: OutputParameters | None = None


class InferParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    timeout: int | None = Field(default=None, ge=0, description="Deadline in microseconds.")
    priority: int | None = Field(default=None, ge=0, description="1 is the highest level; 0 "
                                 "means the model's default level.")
    binary_data_output: bool | None = None


class InferRequestBody(BaseModel):
    """KServe v2 ``POST /v2/models/{model}/infer`` JSON body."""

    id: str | None = None
    parameters: InferParameters | None = None
    inputs: list[InferInputTensor] = Field(min_length=1)
    outputs: list[InferRequestedOutput] | None = None


class InferOutputTensor(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponseBody(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutputTensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class IndexEntry(BaseModel):
    name: str
    version: str
    state: str
    reason: str


class ModelStats(BaseModel):
    model_stats: list[dict[str, Any]]


class Empty(BaseModel):
    pass


# ---- statuses ------------------------------------------------------------------------------
_WHY = {
    400: "Malformed request: the message names the field and the limit.",
    401: "A key is required (API or admin key) and was missing or wrong.",
    403: "Not allowed (model control disabled, cross-site request, or a model outside "
         "--models).",
    404: "No such model or version, or no such path.",
    405: "Method not allowed on this path.",
    408: "The client sent its request too slowly.",
    413: "A size limit passed (body bytes, texts or elements per request).",
    415: "Unsupported Content-Type.",
    429: "Queue full or deadline unreachable; retry after Retry-After seconds.",
    500: "The engine failed for the batch this request was part of.",
    503: "The model (or the server) is not ready: loading, failed or shutting down.",
    504: "The request's deadline passed before it could be computed.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the error statuses a route may answer, all ``ErrorBody``."""
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in statuses}


#: What any route may answer before it runs (access checks, slow clients, overload, draining).
COMMON = (400, 401, 403, 404, 405, 408, 413, 415, 429, 503)
#: What a route that looks a model up adds.
MODEL = (*COMMON, 404, 503)
#: What an inference route adds: the scheduler's answers.
INFERENCE = (*MODEL, 500, 504)


def inlined_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined (``openapi_extra`` is copied into
    the document verbatim, where ``#/$defs/...`` would not resolve)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def infer_request_body(example: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of the infer route: the JSON body (the binary extension is not
    describable in OpenAPI; see the module docstring)."""
    return {
        "parameters": [{
            "name": "Inference-Header-Content-Length", "in": "header", "required": False,
            "description": "Binary tensor extension: bytes of the JSON header at the start of "
                           "the body; the binary tensors follow it.",
            "schema": {"type": "integer", "minimum": 0},
        }],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": inlined_schema(InferRequestBody), "example": example,
        }}},
    }


def infer_responses() -> dict[int | str, dict[str, Any]]:
    """``responses=`` of the infer route: JSON, or binary tensors after a JSON header."""
    return {
        200: {"model": InferResponseBody, "description": "Outputs (JSON), or with binary "
              "outputs an application/octet-stream body: JSON header of "
              "Inference-Header-Content-Length bytes, then the tensors.",
              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                   "format": "binary"}}}},
        **errors(*INFERENCE),
    }
