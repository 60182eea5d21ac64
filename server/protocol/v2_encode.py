"""KServe v2 inference responses, JSON and the binary tensor extension (the classification
extension too): named arrays in, the response body out."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from engines.scores import top_k_indices
from server.protocol.v2 import InferRequest, RequestedOutput
from server.protocol.v2_tensors import field_error as _field


def _bytes_payload(array: np.ndarray) -> bytes:
    parts = []
    for item in array.reshape(-1).tolist():
        b = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def _classification(
    probabilities: np.ndarray, k: int, labels: Sequence[str]
) -> np.ndarray:
    """The classification extension: ``score:index:label`` of the ``k`` best, best first."""
    order = top_k_indices(probabilities, k)
    out = np.empty(order.shape, dtype=object)
    for idx in np.ndindex(order.shape):
        j = int(order[idx])
        label = labels[j] if j < len(labels) else str(j)
        out[idx] = f"{probabilities[(*idx[:-1], j)]:.6f}:{j}:{label}"
    return out


@dataclass
class EncodedResponse:
    body: bytes
    header_length: int | None  # set when the body carries binary tensors


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request: InferRequest,
    tensors: Mapping[str, tuple[str, np.ndarray]],
    labels: Sequence[str] = (),
) -> EncodedResponse:
    """Build the response; ``tensors`` maps output name -> (datatype, array)."""
    wanted = request.outputs
    if wanted is None:
        wanted = [RequestedOutput(n, request.binary_output) for n in tensors]
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in wanted:
        if out.name not in tensors:
            raise _field("outputs", f"model '{model_name}' has no output '{out.name}' "
                         f"(has {sorted(tensors)})")
        datatype, array = tensors[out.name]
        if out.classification:
            if datatype == "BYTES":
                raise _field(f"outputs ('{out.name}').parameters.classification",
                             "needs a numeric output")
            array, datatype = _classification(array, out.classification, labels), "BYTES"
        entry: dict[str, Any] = {"name": out.name, "datatype": datatype,
                                 "shape": list(array.shape)}
        if out.binary or request.binary_output:
            blob = (
                _bytes_payload(array) if datatype == "BYTES"
                else np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif datatype == "BYTES":
            entry["data"] = [
                x.decode("utf-8", "replace") if isinstance(x, bytes) else x
                for x in array.reshape(-1).tolist()
            ]
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version,
                           "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    head = orjson.dumps(doc)
    if not blobs:
        return EncodedResponse(head, None)
    return EncodedResponse(head + b"".join(blobs), len(head))
