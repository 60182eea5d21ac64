"""The one text-model runtime: texts -> token arrays -> scores -> labels.

Two stages with plain, picklable types, so they can run apart (the server's batcher
tokenizes the next batch while the engine runs this one; a front-end process may encode and
an engine process run):

- :meth:`TextRuntime.encode`: texts -> :class:`EncodedTexts` (numpy token arrays, already
  cut into engine calls of similar length when a padded-token budget is set);
- :meth:`TextRuntime.run`: :class:`EncodedTexts` + an engine -> probabilities (float32
  softmax of the logits, rows in the order of the texts).

:class:`TextClassifier` is the front door for one-call users (the pipeline's evaluation, the
load tests): one engine, ``classify(texts)`` calls both stages. The server, the pipeline and
the load tests all go through here, so a model card's accuracy is measured on the path that
serves it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engines.base import Engine
from engines.length_batching import IndexArray, sub_batches
from engines.scores import label_names, softmax, top_k
from engines.tokenization import EncodedBatch, TextEncoder, TokenIds

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class EngineCall:
    """One engine call: its input arrays and the rows of the batch it covers."""

    feeds: dict[str, np.ndarray]
    rows: np.ndarray | None = None
    """Row indices into the batch; None: every row, in order (the call is the whole batch)."""


@dataclass(frozen=True)
class EncodedTexts:
    """The encode stage's output: token arrays ready for the engine, plus token accounting."""

    calls: tuple[EngineCall, ...]
    lengths: IntArray
    """Real (truncated) token count of each text."""
    real_tokens: int
    padded_tokens: int
    """Tokens the engine computes over all calls, padding included."""

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


@dataclass(frozen=True)
class Classification:
    """The run stage's output for a batch of texts."""

    probabilities: np.ndarray
    """``[texts, classes]`` float32, each row summing to 1."""
    real_tokens: int = 0
    padded_tokens: int = 0

    def top_k(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(class indices, probabilities)`` of the ``k`` best classes per text, best first."""
        return top_k(self.probabilities, k)

    def labels(self, names: Sequence[str]) -> list[str]:
        """The best label of each text."""
        return label_names(top_k(self.probabilities, 1)[0], names)


class CallCutter(Protocol):
    """Decides how a batch is cut into engine calls, and learns what each call cost.

    ``cut(lengths)``: ``(row indices, padded width)`` per engine call, every row once (the
    server's cost model, ``server.scheduler.cost_model.CostModel``); ``observe_call(rows,
    width, seconds)``: one call as it ran (called on the engine's thread).
    """

    def cut(self, lengths: np.ndarray) -> list[tuple[IndexArray, int]]: ...

    def observe_call(self, rows: int, width: int, seconds: float) -> None: ...


def logits_output(engine: Engine) -> str:
    """The engine output that holds the logits: ``logits``, else the only output."""
    names = [spec.name for spec in engine.outputs]
    if "logits" in names:
        return "logits"
    if len(names) == 1:
        return names[0]
    raise ValueError(f"cannot tell which engine output holds the logits: {names}")


class TextRuntime:
    """Encodes texts for, and scores them with, engines of one text-classification model.

    Holds no engine: the server runs one runtime over several engine instances.
    ``sub_batch_tokens`` > 0 cuts each batch into calls of at most that many padded tokens;
    else ``cutter`` (when set) cuts it and is told what each call cost; else one call.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        input_names: Sequence[str],
        output_name: str = "logits",
        sub_batch_tokens: int = 0,
        cutter: CallCutter | None = None,
    ) -> None:
        self.encoder = encoder
        self.input_names = tuple(input_names)
        self.output_name = output_name
        self.sub_batch_tokens = sub_batch_tokens
        self.cutter = cutter

    @classmethod
    def for_engine(
        cls, encoder: TextEncoder, engine: Engine, sub_batch_tokens: int = 0,
        cutter: CallCutter | None = None,
    ) -> TextRuntime:
        """A runtime feeding ``engine``'s declared inputs and reading its logits output."""
        names = [spec.name for spec in engine.inputs]
        return cls(encoder, names, logits_output(engine), sub_batch_tokens, cutter)

    def feeds(self, encoded: EncodedBatch) -> dict[str, np.ndarray]:
        """The arrays of ``encoded`` the engine declares (others, like token types, dropped)."""
        available = encoded.as_inputs()
        return {name: available[name] for name in self.input_names}

    def encode(self, texts: Sequence[str]) -> EncodedTexts:
        """Stage one: tokenize ``texts`` (one batch padded to its longest) into engine calls."""
        return self.calls(self.encoder.encode(texts))

    def encode_tokens(self, tokens: TokenIds) -> EncodedTexts:
        """Stage one for texts tokenized elsewhere (a front-end process): pad, cut, no
        tokenizer call; the same as :meth:`encode` of the texts they were made from."""
        return self.calls(self.encoder.pad(tokens))

    def calls(self, encoded: EncodedBatch) -> EncodedTexts:
        """A padded batch cut into engine calls."""
        feeds = self.feeds(encoded)
        if self.cutter is not None and self.sub_batch_tokens <= 0 and len(encoded.lengths) > 1:
            calls = self.cutter.cut(encoded.lengths)
        else:
            calls = sub_batches(encoded.lengths, self.sub_batch_tokens)
        if len(calls) == 1:
            return EncodedTexts((EngineCall(feeds),), encoded.lengths, encoded.real_tokens,
                                encoded.padded_tokens)
        parts, padded = [], 0
        for rows, width in calls:
            parts.append(EngineCall({k: v[rows, :width] for k, v in feeds.items()}, rows))
            padded += len(rows) * width
        return EncodedTexts(tuple(parts), encoded.lengths, encoded.real_tokens, padded)

    def logits(self, engine: Engine, encoded: EncodedTexts) -> np.ndarray:
        """The engine's logits for every text, in text order (each call's rows checked)."""
        total = len(encoded)
        if len(encoded.calls) == 1 and encoded.calls[0].rows is None:
            logits = self._call(engine, encoded.calls[0])
        else:
            parts = [(c.rows, self._call(engine, c)) for c in encoded.calls]
            logits = np.empty((total, parts[0][1].shape[1]), dtype=parts[0][1].dtype)
            for rows, part in parts:
                assert rows is not None
                if part.shape[0] != len(rows):
                    raise RuntimeError(f"engine returned {part.shape[0]} rows for {len(rows)} texts")
                logits[rows] = part
        if logits.shape[0] != total:
            raise RuntimeError(f"engine returned {logits.shape[0]} rows for {total} texts")
        return logits

    def _call(self, engine: Engine, call: EngineCall) -> np.ndarray:
        """One engine call's logits; timed for the cutter when there is one."""
        if self.cutter is None:
            return np.asarray(engine.run(call.feeds)[self.output_name])
        started = time.perf_counter()
        out = np.asarray(engine.run(call.feeds)[self.output_name])
        rows, width = next(iter(call.feeds.values())).shape[:2]
        self.cutter.observe_call(int(rows), int(width), time.perf_counter() - started)
        return out

    def run(self, engine: Engine, encoded: EncodedTexts) -> Classification:
        """Stage two: run ``encoded`` on ``engine`` and turn the logits into probabilities."""
        return Classification(softmax(self.logits(engine, encoded)), encoded.real_tokens,
                              encoded.padded_tokens)


class TextClassifier:
    """The front door: one runtime and one engine, ``classify(texts)`` in one call.

    ``TextClassifier(TextRuntime.for_engine(encoder, engine), engine)`` builds one.
    """

    def __init__(self, runtime: TextRuntime, engine: Engine) -> None:
        self.runtime = runtime
        self.engine = engine

    def encode(self, texts: Sequence[str]) -> EncodedTexts:
        return self.runtime.encode(texts)

    def run(self, encoded: EncodedTexts) -> Classification:
        return self.runtime.run(self.engine, encoded)

    def classify(self, texts: Sequence[str]) -> Classification:
        """Encode and run ``texts`` as one batch."""
        return self.run(self.encode(texts))

    def close(self) -> None:
        self.engine.close()
