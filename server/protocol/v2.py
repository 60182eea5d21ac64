"""KServe v2 inference requests and responses, JSON and the binary tensor extension.

Validation is hand-written on purpose: a request of 64 texts must not cost 64 pydantic models.
Every error is an :class:`InvalidInput` naming the field and the limit.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from engines.base import DATATYPE_TO_NUMPY
from server.errors import InvalidInput, PayloadTooLarge
from server.protocol.names import MAX_DIGITS as _MAX_DIGITS

HEADER_LENGTH = "inference-header-content-length"
_NUMERIC = {k: v for k, v in DATATYPE_TO_NUMPY.items() if k != "BYTES"}
_MAX_DIM = 2**31 - 1
MAX_TIMEOUT_US = 24 * 3600 * 1_000_000
"""Longest request timeout a client may ask for (a day, in microseconds)."""


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on what a client may make the decoder allocate (checked before allocating)."""

    max_elements: int = 4 * 1024 * 1024
    """Elements in one input tensor (``max_tensor_elements``)."""
    max_dims: int = 8
    """Dimensions of one input's shape (``max_tensor_dims``)."""


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


def _field(where: str, message: str) -> InvalidInput:
    return InvalidInput(f"{where}: {message}")


def _as_shape(where: str, value: Any, limits: DecodeLimits) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= _MAX_DIM for d in value
    ):
        raise _field(where, f"must be a list of integers within 0..{_MAX_DIM}")
    if len(value) > limits.max_dims:
        raise _field(where, f"has {len(value)} dimensions; the limit is {limits.max_dims} "
                     "(max_tensor_dims)")
    count = math.prod(value)
    if count > limits.max_elements:
        raise PayloadTooLarge(f"{where}: {list(value)} is {count} elements; the limit is "
                              f"{limits.max_elements} (max_tensor_elements)")
    return tuple(value)


def _flatten(where: str, data: Any, max_depth: int) -> list[Any]:
    """Row-major elements of nested lists, iteratively, nested at most ``max_depth`` deep."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack: list[tuple[list[Any], int]] = [(data, 1)]
    while stack:
        items, depth = stack.pop()
        if items and isinstance(items[0], list):
            if depth >= max_depth:
                raise _field(where, f"is nested deeper than the shape's {max_depth} dimensions")
            stack.extend((item if isinstance(item, list) else [item], depth + 1)
                         for item in reversed(items))
        else:
            out.extend(items)
    return out


def _check_elements(where: str, datatype: str, flat: list[Any]) -> None:
    """JSON data must be of its datatype: numbers for FP, integers for INT/UINT, bools for BOOL."""
    if datatype == "BOOL":
        ok: Any = lambda x: isinstance(x, bool)  # noqa: E731
        kind = "true or false"
    elif datatype.startswith("FP"):
        ok = lambda x: isinstance(x, int | float) and not isinstance(x, bool)  # noqa: E731
        kind = "JSON numbers"
    else:
        ok = lambda x: isinstance(x, int) and not isinstance(x, bool)  # noqa: E731
        kind = "JSON integers"
    for j, item in enumerate(flat):
        if not ok(item):
            raise _field(f"{where}.data[{j}]", f"{datatype} elements must be {kind}, "
                         f"not {_preview(item)}")


def _preview(item: Any) -> str:
    """A short, safe rendering of a JSON value for an error (a nested one is named, not dumped:
    dumping a 1,000-deep object would hit orjson's recursion limit)."""
    if isinstance(item, dict | list):
        return "an object" if isinstance(item, dict) else "an array"
    return orjson.dumps(item)[:40].decode("utf-8", "replace")


def _decode_bytes_binary(where: str, raw: bytes, count: int) -> np.ndarray:
    if 4 * count > len(raw):  # each element has a 4-byte length: check before allocating
        raise _field(where, f"binary BYTES data of {len(raw)} bytes cannot hold {count} elements")
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise _field(where, f"binary BYTES data ends after {i} of {count} elements")
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise _field(where, f"binary BYTES element {i} is truncated")
        out[i] = raw[offset : offset + n]
        offset += n
    if offset != len(raw):
        raise _field(where, f"binary BYTES data has {len(raw) - offset} bytes left over")
    return out


def _decode_input(
    i: int, spec: Any, binary: memoryview | None, offset: int, limits: DecodeLimits
) -> tuple[str, str, np.ndarray, int]:
    where = f"inputs[{i}]"
    if not isinstance(spec, dict):
        raise _field(where, "must be an object with name, shape, datatype and data")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise _field(f"{where}.name", "must be a non-empty string")
    where = f"inputs[{i}] ('{name}')"
    shape = _as_shape(f"{where}.shape", spec.get("shape"), limits)
    datatype = spec.get("datatype")
    if datatype not in DATATYPE_TO_NUMPY:
        raise _field(f"{where}.datatype", f"must be one of {sorted(DATATYPE_TO_NUMPY)}")
    count = math.prod(shape)
    params = spec.get("parameters") or {}
    if not isinstance(params, dict):
        raise _field(f"{where}.parameters", "must be an object")
    size = params.get("binary_data_size")
    if size is not None:
        if binary is None:
            raise _field(where, "binary_data_size given but the request has no binary part "
                         "(Inference-Header-Content-Length header)")
        if (not isinstance(size, int) or isinstance(size, bool) or size < 0
                or offset + size > len(binary)):
            raise _field(f"{where}.parameters.binary_data_size",
                         f"{size} does not fit the {len(binary) - offset} binary bytes left")
        raw = bytes(binary[offset : offset + size])
        offset += size
        if datatype == "BYTES":
            array = _decode_bytes_binary(where, raw, count)
        else:
            dtype = _NUMERIC[datatype]
            if size != count * dtype.itemsize:
                raise _field(f"{where}.parameters.binary_data_size",
                             f"{size} bytes for shape {list(shape)} of {datatype} "
                             f"(expected {count * dtype.itemsize})")
            array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)
        return name, datatype, array.reshape(shape), offset
    if "data" not in spec:
        raise _field(where, "needs 'data' or parameters.binary_data_size")
    flat = _flatten(f"{where}.data", spec["data"], max(1, len(shape)))
    if len(flat) != count:
        raise _field(f"{where}.data", f"has {len(flat)} elements; shape {list(shape)} needs {count}")
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        for j, item in enumerate(flat):
            if not isinstance(item, str):
                raise _field(f"{where}.data[{j}]", "BYTES elements must be strings in JSON")
            array[j] = item
    else:
        _check_elements(where, datatype, flat)
        try:
            array = np.asarray(flat, dtype=_NUMERIC[datatype])
        except (TypeError, ValueError, OverflowError) as e:
            raise _field(f"{where}.data", f"not valid {datatype}: {e}") from e
    return name, datatype, array.reshape(shape), offset


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
    body: bytes, header_length: int | None, limits: DecodeLimits = DecodeLimits()
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
        name, datatype, array, offset = _decode_input(i, spec, binary, offset, limits)
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
