"""KServe v2 inference requests, JSON and the binary tensor extension (responses:
``server.protocol.v2_encode``; one input tensor: ``server.protocol.v2_tensors``).

Validation is hand-written on purpose: a request of 64 texts must not cost 64 pydantic models.
Every error is an :class:`InvalidInput` naming the field and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from server.errors import InvalidInput
from server.protocol.names import MAX_DIGITS as _MAX_DIGITS
from server.protocol.v2_tensors import DecodeLimits, decode_input
from server.protocol.v2_tensors import field_error as _field

__all__ = ["DecodeLimits", "InferRequest", "RequestedOutput", "decode_limits", "decode_request",
           "parse_header_length", "texts_from_request"]

HEADER_LENGTH = "inference-header-content-length"
_DEFAULT_LIMITS = DecodeLimits()
MAX_TIMEOUT_US = 24 * 3600 * 1_000_000
"""Longest request timeout a client may ask for (a day, in microseconds)."""


def decode_limits(settings: Any) -> DecodeLimits:
    """The limits from ``server.settings.Settings`` (duck-typed: protocol knows no settings)."""
    return DecodeLimits(settings.max_tensor_elements, settings.max_tensor_dims)


def parse_count(where: str, raw: str, limit: int = 2**63 - 1) -> int:
    """A non-negative integer written in ASCII digits (no sign, space or Unicode digits)."""
    if not raw or len(raw) > _MAX_DIGITS or not raw.isascii() or not raw.isdigit():
        raise InvalidInput(f"{where}: must be ASCII digits (at most {_MAX_DIGITS})")
    value = int(raw)
    if value > limit:
        raise InvalidInput(f"{where}: {value} is above the limit {limit}")
    return value


def parse_header_length(raw: str | None, body_size: int) -> int | None:
    """``Inference-Header-Content-Length``, strictly: digits, within the body."""
    if raw is None:
        return None
    return parse_count("Inference-Header-Content-Length", raw, body_size)


@dataclass
class RequestedOutput:
    name: str
    binary: bool = False
    classification: int = 0


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    outputs: list[RequestedOutput] | None
    binary_output: bool
    timeout_us: int | None
    parameters: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    """``parameters.priority``: 1 (highest) .. the model's priority_levels; 0 or None: default."""


def _decode_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _field("outputs", "must be a list")
    outputs = []
    seen: set[str] = set()
    for i, spec in enumerate(raw):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _field(f"outputs[{i}].name", "must be a string")
        if spec["name"] in seen:
            raise _field(f"outputs[{i}].name", f"'{spec['name']}' requested twice")
        seen.add(spec["name"])
        params = spec.get("parameters") or {}
        if not isinstance(params, dict):
            raise _field(f"outputs[{i}].parameters", "must be an object")
        k = params.get("classification", 0)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise _field(f"outputs[{i}].parameters.classification", "must be an integer >= 0")
        binary = params.get("binary_data", False)
        if not isinstance(binary, bool):
            raise _field(f"outputs[{i}].parameters.binary_data", "must be true or false")
        outputs.append(RequestedOutput(spec["name"], binary, k))
    return outputs


def decode_request(
    body: bytes, header_length: int | None, limits: DecodeLimits = _DEFAULT_LIMITS
) -> InferRequest:
    """Parse an infer request body (JSON, or JSON header + binary tensors)."""
    binary: memoryview | None = None
    head: bytes | memoryview = body
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise _field("Inference-Header-Content-Length",
                         f"{header_length} is outside the body's {len(body)} bytes")
        view = memoryview(body)
        head, binary = view[:header_length], view[header_length:]
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"body: not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise _field("body", "must be a JSON object")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _field("inputs", "must be a non-empty list")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for i, spec in enumerate(raw_inputs):
        name, datatype, array, offset = decode_input(i, spec, binary, offset, limits)
        if name in inputs:
            raise _field(f"inputs[{i}].name", f"'{name}' given twice")
        inputs[name], datatypes[name] = array, datatype
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise _field("parameters", "must be an object")
    timeout = params.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)
                                or not 0 <= timeout <= MAX_TIMEOUT_US):
        raise _field("parameters.timeout", f"must be an integer within 0..{MAX_TIMEOUT_US} "
                     "(microseconds)")
    priority = params.get("priority")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)
                                 or priority < 0):
        raise _field("parameters.priority", "must be an integer within 0..priority_levels "
                     "(1 is the highest, 0 the model's default level)")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _field("id", "must be a string")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise _field("parameters.binary_data_output", "must be true or false")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        datatypes=datatypes,
        outputs=_decode_outputs(doc.get("outputs")),
        binary_output=binary_output,
        timeout_us=timeout or None,
        parameters=params,
        priority=priority,
    )


def texts_from_request(request: InferRequest, input_name: str) -> tuple[str, ...]:
    """The texts of a text model's request: one BYTES input of shape [n] or [n, 1]."""
    if len(request.inputs) != 1:
        raise _field("inputs", f"a text model takes one BYTES input named '{input_name}'")
    name, array = next(iter(request.inputs.items()))
    if name != input_name:
        raise _field("inputs[0].name", f"'{name}': this text model's input is '{input_name}'")
    if request.datatypes[name] != "BYTES":
        raise _field(f"inputs ('{name}').datatype", "must be BYTES for a text model")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise _field(f"inputs ('{name}').shape", "must be [n] or [n, 1] for a text model")
    texts = []
    for j, item in enumerate(array.tolist()):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _field(f"inputs ('{name}').data[{j}]", "is not valid UTF-8") from e
        texts.append(item)
    return tuple(texts)
