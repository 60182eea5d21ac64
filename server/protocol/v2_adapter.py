"""The v2 infer route around the service: a decoded request becomes a domain request (texts for
a text model, arrays for a tensor model) and the domain result becomes the response body."""

from __future__ import annotations

import numpy as np

from server.domain import ModelInfo, TensorRequest, TensorResult, TextRequest, TextResult
from server.protocol.v2 import InferRequest, texts_from_request
from server.protocol.v2_encode import EncodedResponse, encode_response
from server.service import InferenceService, datatype_of

PRIORITY_FIELD = "parameters.priority"


def domain_request(
    request: InferRequest, model: ModelInfo, name: str, version: str | None
) -> TextRequest | TensorRequest:
    """What the service computes for ``request`` to ``model`` (its texts decoded to str here,
    once: a text model's BYTES tensor never reaches the service as bytes)."""
    priority = request.priority or 0
    if model.is_text:
        input_name = model.inputs[0].name
        return TextRequest(
            name, version, texts_from_request(request, input_name), top_k=1,
            timeout_us=request.timeout_us, priority=priority,
            texts_field=f"inputs ('{input_name}')", priority_field=PRIORITY_FIELD,
        )
    return TensorRequest(name, version, request.inputs, request.timeout_us, priority,
                         PRIORITY_FIELD)


def encode_result(request: InferRequest, result: TextResult | TensorResult) -> EncodedResponse:
    """The response to ``request``: a text model answers ``probabilities`` and its best
    ``label``; a tensor model its outputs, each named by its array's own dtype (the binary
    extension must describe the bytes that are actually sent)."""
    if isinstance(result, TextResult):
        labels = np.array(result.best_labels(), dtype=object)  # str: UTF-8 only in the body
        tensors = {"probabilities": ("FP32", result.probabilities), "label": ("BYTES", labels)}
    else:
        tensors = {name: (datatype_of(a), a) for name, a in result.outputs.items()}
    return encode_response(model_name=result.model, model_version=str(result.version),
                           request=request, tensors=tensors, labels=result.labels)


async def infer(
    service: InferenceService, name: str, version: str | None, request: InferRequest
) -> EncodedResponse:
    """``request`` to model ``name`` answered: wire -> domain -> service -> wire."""
    model = service.model(name, version, request.priority or 0, PRIORITY_FIELD)
    domain = domain_request(request, model, name, version)
    if isinstance(domain, TextRequest):
        return encode_result(request, await service.classify(domain))
    return encode_result(request, await service.infer(domain))
