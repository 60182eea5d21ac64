"""Hypothesis fuzzing of the v2 request decoder, JSON and the binary tensor extension.

OpenAPI cannot describe the binary extension, so ``decode_request`` is fuzzed in-process:
arbitrary JSON, v2-shaped documents with hostile shapes, datatypes and data, and binary bodies
(JSON header + tensor bytes) with random header lengths, sizes and truncations. The only
allowed outcomes are a decoded request or an ``InvalidInput`` (``PayloadTooLarge`` included),
within a time bound and an allocation bound proportional to the body (``tests/fuzz/guard.py``).
"""

from __future__ import annotations

import json
import struct
import traceback
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.errors import InvalidInput
from server.protocol.v2 import InferRequest, decode_request
from tests.fuzz.guard import MAX_SECONDS, allowed_bytes, bounded

DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES"]
ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4,
            "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 1}
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(body: bytes, header_length: int | None) -> None:
    """Fail with the input and the traceback unless the outcome is an allowed one."""
    outcome = bounded(lambda: decode_request(body, header_length))
    where = f"body={body[:300]!r}{'...' if len(body) > 300 else ''} ({len(body)} bytes), " \
            f"header_length={header_length}"
    if outcome.error is not None and not isinstance(outcome.error, InvalidInput):
        tb = "".join(traceback.format_exception(outcome.error))
        raise AssertionError(f"{type(outcome.error).__name__} for {where}:\n{tb}")
    if outcome.error is None:
        assert isinstance(outcome.result, InferRequest)
    assert outcome.seconds < MAX_SECONDS, f"{outcome.seconds:.2f}s for {where}"
    assert outcome.peak_bytes <= allowed_bytes(len(body)), \
        f"allocated {outcome.peak_bytes} bytes for {where}"


# ---- strategies ----------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                         inner, max_size=4),
    max_leaves=30,
)
dims = st.one_of(
    st.integers(min_value=0, max_value=8),
    st.sampled_from([2**31, 2**32, 2**62, 2**63, 2**64, 268435456, -1]),
    st.integers(min_value=0, max_value=2**70),
)
HOSTILE_DIMS = [2**31, 2**32, 2**40, 2**62, 2**63, 2**63 + 1, 2**64, 268435456, 10**7, -1]
hostile_shapes = st.one_of(
    st.lists(st.sampled_from(HOSTILE_DIMS) | st.integers(0, 3), min_size=1, max_size=3),
    st.lists(st.just(1), min_size=33, max_size=70),
    st.lists(st.integers(min_value=2**16, max_value=2**70), min_size=1, max_size=5),
)
small_shapes = st.lists(st.integers(min_value=0, max_value=4), max_size=3)
shapes = st.lists(dims, max_size=4) | hostile_shapes
datatypes = st.sampled_from(DATATYPES) | st.text(max_size=6)
parameters = st.one_of(
    st.none(), st.dictionaries(
        st.sampled_from(["timeout", "priority", "binary_data_output", "binary_data",
                         "classification", "binary_data_size"]),
        scalars | st.integers(min_value=0, max_value=2**40), max_size=3),
    json_values,
)


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": draw(st.text(max_size=6) | st.sampled_from(["text", "x"])),
                            "shape": draw(shapes), "datatype": draw(datatypes)}
    if draw(st.booleans()):
        spec["data"] = draw(st.lists(scalars, max_size=8) | json_values)
    if draw(st.booleans()):
        spec["parameters"] = draw(parameters)
    return spec


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"inputs": draw(st.lists(tensors(), max_size=3) | json_values)}
    if draw(st.booleans()):
        doc["outputs"] = draw(st.lists(st.fixed_dictionaries(
            {"name": st.text(max_size=5)}, optional={"parameters": parameters}), max_size=3)
            | json_values)
    if draw(st.booleans()):
        doc["parameters"] = draw(parameters)
    if draw(st.booleans()):
        doc["id"] = draw(scalars)
    return doc


def _bytes_elements(draw: st.DrawFn, count: int) -> bytes:
    parts = []
    for _ in range(count):
        item = draw(st.binary(max_size=6))
        declared = draw(st.sampled_from([len(item), len(item), 2**32 - 1, len(item) + 1]))
        parts.append(struct.pack("<I", declared) + item)
    return b"".join(parts)


@st.composite
def binary_bodies(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A JSON header whose inputs carry binary_data_size, then payloads, then damage."""
    specs, blobs = [], []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        datatype = draw(st.sampled_from(DATATYPES) | st.just("BYTES"))
        shape = draw(small_shapes | hostile_shapes)
        count = 1
        for d in shape:
            count *= d if isinstance(d, int) and d >= 0 else 1
        if datatype == "BYTES":
            blob = _bytes_elements(draw, min(count, 6))
        else:
            blob = draw(st.binary(min_size=0, max_size=64)) if count > 64 or draw(st.booleans()) \
                else bytes(min(count, 64) * ITEMSIZE[datatype])
        size = draw(st.just(len(blob)) | st.just(len(blob))
                    | st.integers(-2, 2**40) | scalars)
        specs.append({"name": f"in{len(specs)}", "shape": shape, "datatype": datatype,
                      "parameters": {"binary_data_size": size}})
        blobs.append(blob)
    head = dumps({"inputs": specs})
    body = head + b"".join(blobs)
    cut = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=len(body))))
    if cut is not None:
        body = body[:cut]
    header_length = draw(st.one_of(
        st.just(len(head)), st.just(len(head)), st.none(),
        st.integers(min_value=-5, max_value=len(body) + 5), st.just(2**70),
    ))
    return body, header_length


# ---- properties ----------------------------------------------------------------------------
def dumps(doc: Any) -> bytes:
    """JSON as a client may send it (stdlib: integers beyond 64 bits too)."""
    return json.dumps(doc).encode()


def test_the_checker_catches_a_wrong_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker can fail: a non-domain error and an over-allocation are both caught."""
    import server.protocol.v2 as v2

    def broken(_body: Any) -> Any:
        raise TypeError("boom")

    monkeypatch.setattr(v2.orjson, "loads", broken)
    with pytest.raises(AssertionError, match="TypeError"):
        check(b"{}", None)
    monkeypatch.undo()
    outcome = bounded(lambda: bytearray(64 << 20))
    assert outcome.peak_bytes > allowed_bytes(100)


def test_valid_documents_decode() -> None:
    """A plain valid request decodes (so the properties below are not vacuous)."""
    body = dumps({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                     "data": ["a", "b"]}]})
    outcome = bounded(lambda: decode_request(body, None))
    assert outcome.error is None and isinstance(outcome.result, InferRequest)


@FUZZ
@given(st.binary(max_size=200) | json_values.map(dumps),
       st.one_of(st.none(), st.integers(min_value=-3, max_value=300)))
def test_arbitrary_bytes_and_json(body: bytes, header_length: int | None) -> None:
    check(body, header_length)


@FUZZ
@given(documents())
def test_v2_shaped_json_documents(doc: dict[str, Any]) -> None:
    check(dumps(doc), None)


@FUZZ
@given(st.sampled_from([100, 500, 900, 990, 1000, 1023, 1024, 1025, 1100])
       | st.integers(min_value=1, max_value=1100), st.sampled_from(["[", "[[", "{\"a\":"]))
def test_deeply_nested_data(depth: int, opener: str) -> None:
    closer = {"[": "]", "[[": "]]", "{\"a\":": "}"}[opener]
    data = opener * depth + "1" + closer * depth
    body = ('{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":' + data + "}]}").encode()
    check(body, None)


@FUZZ
@given(binary_bodies())
def test_binary_extension_bodies(case: tuple[bytes, int | None]) -> None:
    body, header_length = case
    check(body, header_length)


@FUZZ
@given(hostile_shapes, st.sampled_from(DATATYPES))
def test_hostile_shapes_in_json(shape: list[int], datatype: str) -> None:
    """Shapes whose element count is small (a 0 or all 1s) but whose dimensions are not."""
    count = 1
    for d in shape:
        count *= max(d, 0)
    data = ["a" if datatype == "BYTES" else 1] * min(count, 4)
    check(dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}),
          None)


@FUZZ
@given(st.sampled_from([d for d in DATATYPES if d not in ("BYTES", "BOOL")]),
       st.one_of(st.text(max_size=4), st.none(), st.booleans(),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)))
def test_numeric_data_is_strict(datatype: str, item: Any) -> None:
    """A string, null, boolean or object in numeric data is a 400, never a NaN or a cast."""
    body = dumps({"inputs": [{"name": "x", "shape": [1], "datatype": datatype, "data": [item]}]})
    outcome = bounded(lambda: decode_request(body, None))
    assert isinstance(outcome.error, InvalidInput), f"{body!r} decoded to {outcome.result}"
