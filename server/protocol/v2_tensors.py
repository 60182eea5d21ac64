"""One KServe v2 input tensor decoded: JSON data or the binary extension's bytes, into a numpy
array of its datatype, with every client-sized allocation checked first."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from engines.base import DATATYPE_TO_NUMPY
from server.errors import InvalidInput, PayloadTooLarge

_NUMERIC = {k: v for k, v in DATATYPE_TO_NUMPY.items() if k != "BYTES"}
_MAX_DIM = 2**31 - 1


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on what a client may make the decoder allocate (checked before allocating)."""

    max_elements: int = 4 * 1024 * 1024
    """Elements in one input tensor (``max_tensor_elements``)."""
    max_dims: int = 8
    """Dimensions of one input's shape (``max_tensor_dims``)."""


def field_error(where: str, message: str) -> InvalidInput:
    """``where: message``: every decoding error names its field."""
    return InvalidInput(f"{where}: {message}")


_field = field_error


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


def decode_input(
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
