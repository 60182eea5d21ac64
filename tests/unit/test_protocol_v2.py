"""KServe v2 request decoding and response encoding, JSON and binary."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from server.errors import InvalidInput
from server.protocol.v2 import (
    DecodeLimits,
    decode_request,
    parse_header_length,
    texts_from_request,
)
from server.protocol.v2_encode import encode_response


def _bytes_blob(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def test_json_bytes_and_numeric_inputs() -> None:
    body = orjson.dumps({
        "id": "r1",
        "inputs": [
            {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "bé"]},
            {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]},
        ],
        "parameters": {"timeout": 500},
    })
    req = decode_request(body, None)
    assert req.id == "r1" and req.timeout_us == 500
    assert req.inputs["x"].dtype == np.float32 and req.inputs["x"].shape == (2, 2)
    assert req.inputs["x"][1, 0] == 3.0
    assert list(req.inputs["text"]) == ["a", "bé"]


def test_binary_inputs_bytes_and_fp32() -> None:
    texts = [b"hello", "wörld".encode()]
    blob1 = _bytes_blob(texts)
    blob2 = np.arange(6, dtype="<f4").tobytes()
    head = orjson.dumps({"inputs": [
        {"name": "text", "shape": [2], "datatype": "BYTES",
         "parameters": {"binary_data_size": len(blob1)}},
        {"name": "x", "shape": [2, 3], "datatype": "FP32",
         "parameters": {"binary_data_size": len(blob2)}},
    ]})
    req = decode_request(head + blob1 + blob2, len(head))
    assert texts_from_request(
        type(req)(req.id, {"text": req.inputs["text"]}, {"text": "BYTES"}, None, False, None),
        "text",
    ) == ("hello", "wörld")
    np.testing.assert_array_equal(req.inputs["x"], np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({}, "inputs: must be a non-empty list"),
        ({"inputs": [{"name": "t", "shape": [1], "datatype": "STR", "data": ["a"]}]}, "datatype"),
        ({"inputs": [{"name": "t", "shape": [-1], "datatype": "BYTES", "data": ["a"]}]}, "shape"),
        ({"inputs": [{"name": "t", "shape": [3], "datatype": "BYTES", "data": ["a"]}]},
         "has 1 elements; shape [3] needs 3"),
        ({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": [5]}]},
         "data[0]"),
        ({"inputs": [{"name": "t", "shape": [1], "datatype": "INT32", "data": ["z"]}]},
         "INT32 elements must be JSON integers"),
        ({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
          "parameters": {"timeout": -4}}, "parameters.timeout"),
        ({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": 9}}]}, "binary part"),
    ],
)
def test_malformed_requests_name_the_field(doc: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidInput) as e:
        decode_request(orjson.dumps(doc), None)
    assert needle in str(e.value)


def test_truncated_binary_bytes_is_an_error() -> None:
    blob = _bytes_blob([b"hello"])[:-2]
    head = orjson.dumps({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}]})
    with pytest.raises(InvalidInput, match="truncated"):
        decode_request(head + blob, len(head))


def test_invalid_utf8_text_is_an_error() -> None:
    blob = _bytes_blob([b"\xff\xfe"])
    head = orjson.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(blob)}}]})
    req = decode_request(head + blob, len(head))
    with pytest.raises(InvalidInput, match="UTF-8"):
        texts_from_request(req, "text")


def test_encode_binary_response_and_classification() -> None:
    req = decode_request(orjson.dumps({
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
        "outputs": [{"name": "raw", "parameters": {"binary_data": True}},
                    {"name": "probabilities", "parameters": {"classification": 2}}],
    }), None)
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    enc = encode_response(model_name="m", model_version="1", request=req,
                          tensors={"probabilities": ("FP32", probs), "raw": ("FP32", probs)},
                          labels=("a", "b", "c"))
    assert enc.header_length is not None
    head = orjson.loads(enc.body[: enc.header_length])
    first, second = head["outputs"]
    size = first["parameters"]["binary_data_size"]
    assert size == probs.nbytes
    raw = enc.body[enc.header_length : enc.header_length + size]
    np.testing.assert_array_equal(np.frombuffer(raw, "<f4").reshape(2, 3), probs)
    assert second["data"] == ["0.700000:1:b", "0.200000:2:c", "0.500000:0:a", "0.300000:2:c"]


def test_unknown_output_is_an_error() -> None:
    req = decode_request(orjson.dumps({
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
        "outputs": [{"name": "nope"}],
    }), None)
    with pytest.raises(InvalidInput, match="no output 'nope'"):
        encode_response(model_name="m", model_version="1", request=req,
                        tensors={"label": ("BYTES", np.array([b"x"], dtype=object))})


def _with_parameters(parameters: dict[str, object]) -> bytes:
    return orjson.dumps({
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}],
        "parameters": parameters,
    })


def test_priority_parameter_is_read_as_a_strict_integer() -> None:
    assert decode_request(_with_parameters({"priority": 2}), None).priority == 2
    assert decode_request(_with_parameters({}), None).priority is None
    assert decode_request(_with_parameters({"priority": None}), None).priority is None  # as timeout


@pytest.mark.parametrize("bad", [-1, 1.0, "1", True, [1]])
def test_priority_parameter_that_is_not_a_non_negative_integer_names_the_field(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"^parameters\.priority: must be an integer within"):
        decode_request(_with_parameters({"priority": bad}), None)


# ---- hostile input (issue 10): every client-sized allocation is checked first ----------------
def _one(spec: dict[str, object], **doc: object) -> bytes:
    return orjson.dumps({"inputs": [{"name": "t", **spec}], **doc})


def test_binary_bytes_shape_larger_than_its_data_is_refused_before_allocating() -> None:
    head = _one({"shape": [268435456], "datatype": "BYTES",
                 "parameters": {"binary_data_size": 4}})
    with pytest.raises(InvalidInput, match="cannot hold 268435456 elements"):
        decode_request(head + b"\0\0\0\0", len(head),
                       DecodeLimits(max_elements=2**31, max_dims=8))


@pytest.mark.parametrize("shape", [[2**31], [2**62], [65536, 65536]])
def test_shape_past_max_elements_is_413(shape: list[int]) -> None:
    with pytest.raises(InvalidInput, match=r"max_tensor_elements|integers within"):
        decode_request(_one({"shape": shape, "datatype": "FP32", "data": [1.0]}), None)


def test_shape_with_64_dimensions_names_the_limit() -> None:
    with pytest.raises(InvalidInput, match="64 dimensions; the limit is 8"):
        decode_request(_one({"shape": [1] * 64, "datatype": "FP32", "data": [1.0]}), None)


def test_data_nested_1000_deep_is_a_400_not_a_recursion_error() -> None:
    data = b"[" * 1000 + b"1.0" + b"]" * 1000  # past orjson.dumps's depth, within loads's
    body = b'{"inputs": [{"name": "t", "shape": [1, 1], "datatype": "FP32", "data": %s}]}' % data
    with pytest.raises(InvalidInput, match="nested deeper"):
        decode_request(body, None)


def test_json_nested_past_the_parser_limit_is_a_400() -> None:
    body = b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode_request(body, None)


@pytest.mark.parametrize("bad", ["1.5", None, True])
def test_fp32_data_must_be_json_numbers(bad: object) -> None:
    with pytest.raises(InvalidInput, match=r"data\[1\]: FP32 elements must be JSON numbers"):
        decode_request(_one({"shape": [2], "datatype": "FP32", "data": [1.0, bad]}), None)


def test_int64_data_must_be_integral() -> None:
    with pytest.raises(InvalidInput, match="INT64 elements must be JSON integers"):
        decode_request(_one({"shape": [1], "datatype": "INT64", "data": [1.7]}), None)


def test_binary_data_must_be_a_json_bool() -> None:
    body = _one({"shape": [1], "datatype": "FP32", "data": [1.0]},
                outputs=[{"name": "y", "parameters": {"binary_data": "false"}}])
    with pytest.raises(InvalidInput, match=r"outputs\[0\].parameters.binary_data"):
        decode_request(body, None)
    body = _one({"shape": [1], "datatype": "FP32", "data": [1.0]},
                parameters={"binary_data_output": "false"})
    with pytest.raises(InvalidInput, match="binary_data_output"):
        decode_request(body, None)


def test_duplicate_output_names_are_a_400() -> None:
    body = _one({"shape": [1], "datatype": "FP32", "data": [1.0]},
                outputs=[{"name": "y"}, {"name": "y"}])
    with pytest.raises(InvalidInput, match=r"outputs\[1\].name: 'y' requested twice"):
        decode_request(body, None)


def test_text_input_name_is_checked() -> None:
    req = decode_request(_one({"shape": [1], "datatype": "BYTES", "data": ["hi"]}), None)
    with pytest.raises(InvalidInput, match="this text model's input is 'text'"):
        texts_from_request(req, "text")


@pytest.mark.parametrize("raw", ["9" * 5000, "²", "-1", " 12", "1e3", ""])
def test_header_length_is_parsed_strictly(raw: str) -> None:
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        parse_header_length(raw, 100)


def test_header_length_past_the_body_is_a_400() -> None:
    with pytest.raises(InvalidInput, match="above the limit 10"):
        parse_header_length("11", 10)
    assert parse_header_length("10", 10) == 10 and parse_header_length(None, 10) is None


def test_a_deep_object_as_an_element_is_named_not_dumped() -> None:
    """Found by tests/fuzz: the error message once dumped the element and hit orjson's limit."""
    data = b'{"a":' * 1000 + b"1" + b"}" * 1000
    body = b'{"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": %s}]}' % data
    with pytest.raises(InvalidInput, match="JSON numbers, not an object"):
        decode_request(body, None)


@pytest.mark.parametrize("timeout", [2**63 - 1, -1, True, 1.5, "100"])
def test_timeout_parameter_is_a_bounded_integer(timeout: object) -> None:
    doc = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
           "parameters": {"timeout": timeout}}
    with pytest.raises(InvalidInput, match=r"parameters.timeout: must be an integer within 0\.\."):
        decode_request(orjson.dumps(doc), None)
