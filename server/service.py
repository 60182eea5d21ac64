"""What the front ends call: find the model, check limits, submit to its batcher, shape results.

It takes and returns the plain values of :mod:`server.domain` (texts or tensors in, labels,
scores or tensors out) and knows no wire format and no web framework: ``server/api`` and
``server/protocol`` adapt each protocol to it on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

import numpy as np

from engines.base import DATATYPE_TO_NUMPY
from engines.scores import top_k_indices
from engines.tokenization import TokenIds
from server.domain import (
    ModelInfo,
    RankRequest,
    RankResult,
    TensorRequest,
    TensorResult,
    TextRequest,
    TextResult,
)
from server.errors import InferenceFailed, InvalidInput, PayloadTooLarge
from server.inference.ranking import rank
from server.inference.text import clip_texts, estimate_tokens, token_cost
from server.repository.loader import ModelVersion
from server.repository.registry import ModelRegistry
from server.scheduler.timings import Timings

#: The current request's stage timings, set by the HTTP layer (``server/api/access.py``) around
#: each request; the service hands it to the batcher and records the version that served it.
#: Unset (``None``) outside a request: nothing is recorded.
REQUEST_TIMINGS: ContextVar[Timings | None] = ContextVar("sluice_request_timings", default=None)

_NUMPY_TO_DATATYPE = {dtype: name for name, dtype in DATATYPE_TO_NUMPY.items()}


def datatype_of(array: np.ndarray) -> str:
    """The tensor datatype name (``FP32``, ``BYTES`` ...) of ``array``'s dtype."""
    try:
        return _NUMPY_TO_DATATYPE[array.dtype]
    except KeyError:
        raise InferenceFailed(f"engine returned an array of unsupported dtype {array.dtype}") from None


def _check_priority(model: ModelVersion, priority: int, field: str) -> None:
    """``InvalidInput`` naming ``field`` unless ``priority`` is within 0..priority_levels."""
    model.batcher.policy.priorities.level_of(priority, field, model.name)


def _served_by(model: ModelVersion) -> ModelVersion:
    timings = REQUEST_TIMINGS.get()
    if timings is not None:
        timings.version = model.version
    return model


def _check_tensors(model: ModelVersion, inputs: dict[str, np.ndarray]) -> int:
    """The batch's rows, once ``inputs`` match the model's input names, dtypes and shapes."""
    expected = {spec.name: spec for spec in model.inputs}
    if set(inputs) != set(expected):
        raise InvalidInput(f"inputs: model '{model.name}' takes {sorted(expected)}, "
                           f"got {sorted(inputs)}")
    rows: int | None = None
    for name, array in inputs.items():
        spec = expected[name]
        if array.dtype != DATATYPE_TO_NUMPY[spec.datatype]:
            raise InvalidInput(f"inputs ('{name}').datatype: must be {spec.datatype}")
        if array.ndim != len(spec.shape) or any(
            d != -1 and d != a for d, a in zip(spec.shape[1:], array.shape[1:], strict=True)
        ):
            raise InvalidInput(f"inputs ('{name}').shape: {list(array.shape)} does not match "
                               f"{list(spec.shape)} (-1 = any)")
        if rows is not None and array.shape[0] != rows:
            raise InvalidInput("inputs: every input needs the same first (batch) dimension")
        rows = int(array.shape[0])
    assert rows is not None
    if rows < 1:
        raise InvalidInput("inputs: the batch dimension must be at least 1")
    if rows > model.config.max_inputs_per_request:
        raise PayloadTooLarge(
            f"inputs: batch of {rows} rows; model '{model.name}' takes at most "
            f"{model.config.max_inputs_per_request} (max_inputs_per_request)"
        )
    return rows


def _rows_of(texts: tuple[str, ...], subset: tuple[str, ...],
             tokens: TokenIds | None) -> TokenIds | None:
    """The tokens of ``subset`` (texts among ``texts``), when ``tokens`` are ``texts``'."""
    if tokens is None:
        return None
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)
    return tokens.take([first[t] for t in subset])


class InferenceService:
    def __init__(self, registry: ModelRegistry, chars_per_token: int = 16) -> None:
        self.registry = registry
        self.chars_per_token = chars_per_token

    def model(
        self, name: str, version: str | None, priority: int = 0, priority_field: str = "priority"
    ) -> ModelInfo:
        """What a front end needs to build a request for ``name`` (``ModelNotFound`` ...);
        ``InvalidInput`` naming ``priority_field`` unless ``priority`` is one of its levels (so
        a protocol that checks the level before the inputs keeps that order)."""
        model = _served_by(self.registry.get(name, version))
        _check_priority(model, priority, priority_field)
        return ModelInfo(model.name, model.version, model.is_text, model.inputs, model.outputs,
                         model.config.labels)

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
        priority: int = 0, tokens: TokenIds | None = None,
    ) -> np.ndarray:
        cache = model.cache
        if cache is None:
            return await self._compute(model, texts, timeout_us, priority, tokens)

        async def compute(missing: tuple[str, ...]) -> np.ndarray:
            return await self._compute(model, missing, timeout_us, priority,
                                       _rows_of(texts, missing, tokens))

        probabilities, hits = await cache.probabilities(texts, compute)
        model.observer.cache_hits.inc(hits)
        model.observer.cache_misses.inc(len(texts) - hits)
        return probabilities

    async def _compute(
        self, model: ModelVersion, texts: tuple[str, ...], timeout_us: int | None,
        priority: int = 0, tokens: TokenIds | None = None,
    ) -> np.ndarray:
        payload: tuple[str, ...] | TokenIds = texts
        if tokens is not None:
            payload, cost = tokens, token_cost(tokens)
        else:
            cost = max(estimate_tokens(t, model.config.max_length) for t in texts)
        result: np.ndarray = await model.batcher.submit(
            payload, items=len(texts), cost=cost, timeout_us=timeout_us,
            timings=REQUEST_TIMINGS.get(), priority=priority,
        )
        return result

    def checked_texts(self, model: ModelVersion, request: TextRequest) -> tuple[str, ...]:
        """The request's texts as :meth:`classify` takes them (a front end that tokenizes
        them checks them first, with the same errors)."""
        if not model.is_text:
            raise InvalidInput(f"model '{model.name}' is a tensor model; it takes tensors, "
                               "not texts")
        return self._check_texts(model, request.texts, request.texts_field)

    async def classify(self, request: TextRequest) -> TextResult:
        """Class probabilities of the request's texts and their ``top_k`` best classes."""
        return await self.classify_tokens(request, None, None)

    async def classify_tokens(self, request: TextRequest, tokens: TokenIds | None,
                              tokenized_by: int | None) -> TextResult:
        """:meth:`classify`, the texts (as :meth:`checked_texts` returns them) already
        tokenized by version ``tokenized_by``'s tokenizer (a front-end process's work): used
        when that version serves the request, else the texts are tokenized here."""
        model = _served_by(self.registry.get(request.model, request.version))
        texts = self.checked_texts(model, request)
        _check_priority(model, request.priority, request.priority_field)
        labels = model.config.labels
        if not 1 <= request.top_k <= len(labels):
            raise InvalidInput(f"top_k: must be within 1..{len(labels)} (the model's classes)")
        if tokens is not None and (tokenized_by != model.version or len(tokens) != len(texts)):
            tokens = None  # another version's tokenizer: tokenize here
        probabilities = await self._probabilities(model, texts, request.timeout_us,
                                                  request.priority, tokens)
        return TextResult(model.name, model.version, labels, probabilities,
                          top_k_indices(probabilities, request.top_k))

    async def rank(self, request: RankRequest) -> RankResult:
        """The request's candidates scored for its user on a ranking model, best first."""
        model = _served_by(self.registry.get(request.model, request.version))
        ranked = await rank(model, request.user_id, request.item_ids, request.top_k,
                            request.timeout_us, request.priority, REQUEST_TIMINGS.get())
        return RankResult(model.name, model.version, ranked.item_ids, ranked.scores)

    async def infer(self, request: TensorRequest) -> TensorResult:
        """The engine's outputs for the request's input arrays (a tensor model's batch)."""
        model = _served_by(self.registry.get(request.model, request.version))
        _check_priority(model, request.priority, request.priority_field)
        if model.is_text:
            raise InvalidInput(f"model '{model.name}' is a text model; it takes texts")
        inputs = dict(request.inputs)
        rows = _check_tensors(model, inputs)
        outputs: dict[str, np.ndarray] = await model.batcher.submit(
            inputs, items=rows, cost=1, timeout_us=request.timeout_us,
            timings=REQUEST_TIMINGS.get(), priority=request.priority,
        )
        for array in outputs.values():
            datatype_of(array)  # InferenceFailed for a dtype no protocol can describe
        return TensorResult(model.name, model.version, outputs, model.config.labels)
