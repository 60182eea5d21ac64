"""What the HTTP routes call: find the model, check limits, submit to its batcher, shape results.

Free of any web framework so that it is testable on its own and the routes stay thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from engines.base import DATATYPE_TO_NUMPY
from server.errors import InferenceFailed, InvalidInput, PayloadTooLarge
from server.inference.text import clip_texts, estimate_tokens
from server.protocol.v2 import EncodedResponse, InferRequest, encode_response, texts_from_request
from server.repository.loader import ModelVersion
from server.repository.registry import ModelRegistry
from server.scheduler.timings import Timings

#: The current request's stage timings, set by the HTTP layer (``server/api/access.py``) around
#: each request; the service hands it to the batcher and records the version that served it.
#: Unset (``None``) outside a request: nothing is recorded.
REQUEST_TIMINGS: ContextVar[Timings | None] = ContextVar("sluice_request_timings", default=None)

_NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPE_TO_NUMPY.items()}


def _datatype_of(array: np.ndarray) -> str:
    try:
        return _NUMPY_TO_DATATYPE[array.dtype]
    except KeyError:
        raise InferenceFailed(f"engine returned an array of unsupported dtype {array.dtype}") from None


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


def _check_priority(model: ModelVersion, priority: int, field: str) -> None:
    """``InvalidInput`` naming ``field`` unless ``priority`` is within 0..priority_levels."""
    model.batcher.policy.priorities.level_of(priority, field, model.name)


def _served_by(model: ModelVersion) -> ModelVersion:
    timings = REQUEST_TIMINGS.get()
    if timings is not None:
        timings.version = model.version
    return model


class InferenceService:
    def __init__(self, registry: ModelRegistry, chars_per_token: int = 16) -> None:
        self.registry = registry
        self.chars_per_token = chars_per_token

    def _check_texts(
        self, model: ModelVersion, texts: Sequence[str], field: str
    ) -> tuple[str, ...]:
        """The request's texts, counted and cut to the model's character budget."""
        limit = model.config.max_inputs_per_request
        if not texts:
            raise InvalidInput(f"{field}: needs at least one text")
        if len(texts) > limit:
            raise PayloadTooLarge(
                f"{field}: {len(texts)} texts in one request; model '{model.name}' takes at "
                f"most {limit} (max_inputs_per_request)"
            )
        budget = model.config.max_length * self.chars_per_token
        return clip_texts(texts, budget, model.config.strict_length, field)

    async def _probabilities(
        self, model: ModelVersion, texts: tuple[str, ...], timeout_us: int | None,
        priority: int = 0,
    ) -> np.ndarray:
        cache = model.cache
        if cache is None:
            return await self._compute(model, texts, timeout_us, priority)

        async def compute(missing: tuple[str, ...]) -> np.ndarray:
            return await self._compute(model, missing, timeout_us, priority)

        probabilities, hits = await cache.probabilities(texts, compute)
        model.observer.cache_hits.inc(hits)
        model.observer.cache_misses.inc(len(texts) - hits)
        return probabilities

    async def _compute(
        self, model: ModelVersion, texts: tuple[str, ...], timeout_us: int | None,
        priority: int = 0,
    ) -> np.ndarray:
        cost = max(estimate_tokens(t, model.config.max_length) for t in texts)
        result: np.ndarray = await model.batcher.submit(
            texts, items=len(texts), cost=cost, timeout_us=timeout_us, timings=REQUEST_TIMINGS.get(),
            priority=priority,
        )
        return result

    async def classify(
        self,
        name: str,
        version: str | None,
        texts: Sequence[str],
        top_k: int,
        timeout_us: int | None = None,
        priority: int = 0,
    ) -> tuple[ModelVersion, list[list[Prediction]]]:
        model = _served_by(self.registry.get(name, version))
        if not model.is_text:
            raise InvalidInput(f"model '{name}' is a tensor model; use /v2/models/{name}/infer")
        texts = self._check_texts(model, texts, "inputs")
        _check_priority(model, priority, "priority")
        labels = model.config.labels
        if not 1 <= top_k <= len(labels):
            raise InvalidInput(f"top_k: must be within 1..{len(labels)} (the model's classes)")
        probabilities = await self._probabilities(model, tuple(texts), timeout_us, priority)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
        predictions = [
            [Prediction(labels[j], float(row[j])) for j in idx]
            for row, idx in zip(probabilities, order, strict=True)
        ]
        return model, predictions

    async def infer(self, name: str, version: str | None, request: InferRequest) -> EncodedResponse:
        model = _served_by(self.registry.get(name, version))
        timeout_us = request.timeout_us
        priority = request.priority or 0
        _check_priority(model, priority, "parameters.priority")
        if model.is_text:
            texts = texts_from_request(request, model.inputs[0].name)
            texts = self._check_texts(model, texts, f"inputs ('{model.inputs[0].name}')")
            probabilities = await self._probabilities(model, texts, timeout_us, priority)
            labels = model.config.labels
            best = probabilities.argmax(axis=1)
            label_array = np.array([labels[j].encode() for j in best], dtype=object)
            tensors = {"probabilities": ("FP32", probabilities), "label": ("BYTES", label_array)}
        else:
            tensors = await self._infer_tensor(model, request, timeout_us, priority)
        return encode_response(
            model_name=model.name, model_version=str(model.version), request=request,
            tensors=tensors, labels=model.config.labels,
        )

    async def _infer_tensor(
        self, model: ModelVersion, request: InferRequest, timeout_us: int | None,
        priority: int = 0,
    ) -> dict[str, tuple[str, np.ndarray]]:
        expected = {spec.name: spec for spec in model.inputs}
        given = set(request.inputs)
        if given != set(expected):
            raise InvalidInput(f"inputs: model '{model.name}' takes {sorted(expected)}, "
                               f"got {sorted(given)}")
        rows = None
        for name, array in request.inputs.items():
            spec = expected[name]
            if request.datatypes[name] != spec.datatype:
                raise InvalidInput(f"inputs ('{name}').datatype: must be {spec.datatype}")
            if array.ndim != len(spec.shape) or any(
                d != -1 and d != a for d, a in zip(spec.shape[1:], array.shape[1:], strict=True)
            ):
                raise InvalidInput(f"inputs ('{name}').shape: {list(array.shape)} does not match "
                                   f"{list(spec.shape)} (-1 = any)")
            if rows is not None and array.shape[0] != rows:
                raise InvalidInput("inputs: every input needs the same first (batch) dimension")
            rows = array.shape[0]
        assert rows is not None
        if rows < 1:
            raise InvalidInput("inputs: the batch dimension must be at least 1")
        if rows > model.config.max_inputs_per_request:
            raise PayloadTooLarge(
                f"inputs: batch of {rows} rows; model '{model.name}' takes at most "
                f"{model.config.max_inputs_per_request} (max_inputs_per_request)"
            )
        outputs: dict[str, np.ndarray] = await model.batcher.submit(
            dict(request.inputs), items=rows, cost=1, timeout_us=timeout_us,
            timings=REQUEST_TIMINGS.get(), priority=priority,
        )
        # The array's own dtype names it: a declared name could disagree with what the engine
        # returned, and the binary extension must describe the bytes that are actually sent.
        return {name: (_datatype_of(array), array) for name, array in outputs.items()}
