"""Batch tokenization for text models with the fast (Rust) ``tokenizers`` library.

Each batch is padded to its OWN longest text, not to ``max_length``: short texts (tweets are
mostly under 40 tokens) then cost a fraction of a ``max_length`` forward pass.

Arrays are built without per-token Python loops: the tokenizer runs without padding, the
token ids of the whole batch are streamed into one flat int64 array (``np.fromiter``) and
scattered into the padded matrix through a boolean mask of real positions.

Thread safety: the tokenizer's truncation and padding settings are object state. They are set
once in :meth:`TextEncoder.from_dir` and never changed afterwards, so one encoder may be used
from several threads at once (``encode_batch`` releases the GIL and runs in parallel).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from engines.errors import ArtifactError

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class EncodedBatch:
    """A tokenized batch: ``[batch, longest]`` int64 arrays plus real lengths.

    Rows are padded on the right with the pad id; ``attention_mask`` is 1 on real tokens.
    """

    input_ids: IntArray
    attention_mask: IntArray
    token_type_ids: IntArray
    lengths: IntArray
    """Real (unpadded, truncated) token count of each text, shape ``[batch]``."""
    pad_id: int = 0

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def real_tokens(self) -> int:
        """Tokens that carry text (the sum of ``lengths``)."""
        return int(self.lengths.sum())

    @property
    def padded_tokens(self) -> int:
        """Tokens the model computes (``batch x longest``), padding included."""
        return int(self.input_ids.size)

    def as_inputs(self) -> dict[str, np.ndarray]:
        """The arrays under the names Hugging Face and ONNX exports use for them."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }

    @staticmethod
    def concat(batches: Sequence[EncodedBatch]) -> EncodedBatch:
        """Stack several batches into one, re-padded to the longest row among them.

        Lets a scheduler tokenize each request when it arrives and merge them at batch time.
        """
        if not batches:
            raise ValueError("concat needs at least one batch")
        if len(batches) == 1:
            return batches[0]
        pad_id = batches[0].pad_id
        lengths = np.concatenate([b.lengths for b in batches])
        longest = max(b.input_ids.shape[1] for b in batches)

        def stack(name: str, fill: int) -> IntArray:
            out = np.full((len(lengths), longest), fill, dtype=np.int64)
            row = 0
            for b in batches:
                arr = getattr(b, name)
                out[row : row + arr.shape[0], : arr.shape[1]] = arr
                row += arr.shape[0]
            return out

        return EncodedBatch(
            input_ids=stack("input_ids", pad_id),
            attention_mask=stack("attention_mask", 0),
            token_type_ids=stack("token_type_ids", 0),
            lengths=lengths,
            pad_id=pad_id,
        )


@dataclass(frozen=True)
class TokenIds:
    """Texts tokenized but not padded: every text's ids one after another, and each text's
    length. Small and cheap to pickle: what a front-end process sends an engine process.

    :meth:`TextEncoder.pad` turns it into the :class:`EncodedBatch` that
    :meth:`TextEncoder.encode` makes of the same texts.
    """

    ids: np.ndarray
    """int32 ``[sum(lengths)]``."""
    lengths: np.ndarray
    """int32 ``[texts]``: each text's token count (truncated, special tokens included)."""
    type_ids: np.ndarray | None = None
    """Like ``ids``; None when every token type is 0 (single texts, the usual case)."""

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def __reduce__(self) -> tuple[Any, tuple[bytes, bytes, bytes | None]]:
        """Pickled as raw int32 bytes: a tenth of the cost of pickling the arrays."""
        def raw(a: np.ndarray | None) -> bytes | None:
            return None if a is None else np.ascontiguousarray(a, dtype=np.int32).tobytes()

        return _token_ids, (raw(self.ids) or b"", raw(self.lengths) or b"", raw(self.type_ids))

    def take(self, rows: Sequence[int]) -> TokenIds:
        """The texts at ``rows``, in that order."""
        ends = np.cumsum(self.lengths)
        starts = ends - self.lengths

        def pick(flat: np.ndarray) -> np.ndarray:
            return np.concatenate([flat[starts[r]:ends[r]] for r in rows]) if len(rows) else flat[:0]

        return TokenIds(pick(self.ids), self.lengths[list(rows)],
                        None if self.type_ids is None else pick(self.type_ids))

    @staticmethod
    def concat(parts: Sequence[TokenIds]) -> TokenIds:
        if len(parts) == 1:
            return parts[0]
        types = None
        if any(p.type_ids is not None for p in parts):
            types = np.concatenate([np.zeros_like(p.ids) if p.type_ids is None else p.type_ids
                                    for p in parts])
        return TokenIds(np.concatenate([p.ids for p in parts]),
                        np.concatenate([p.lengths for p in parts]), types)


def _token_ids(ids: bytes, lengths: bytes, type_ids: bytes | None) -> TokenIds:
    return TokenIds(np.frombuffer(ids, dtype=np.int32), np.frombuffer(lengths, dtype=np.int32),
                    None if type_ids is None else np.frombuffer(type_ids, dtype=np.int32))


def _pad_id(tokenizer: Tokenizer, folder: Path) -> int:
    """The pad id: from tokenizer.json's padding section, else tokenizer_config's pad_token."""
    padding = tokenizer.padding
    if padding is not None:
        return int(padding["pad_id"])
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        pad_token = json.loads(config_file.read_text(encoding="utf-8")).get("pad_token")
        if isinstance(pad_token, dict):  # AddedToken serialised as a dict
            pad_token = pad_token.get("content")
        if isinstance(pad_token, str):
            token_id = tokenizer.token_to_id(pad_token)
            if token_id is not None:
                return int(token_id)
    return 0


class TextEncoder:
    """Turns texts into padded int64 arrays; truncates at ``max_length`` tokens."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, pad_id: int = 0) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer = tokenizer
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        self.max_length = max_length
        self.pad_id = pad_id

    @classmethod
    def from_dir(cls, path: Path, max_length: int) -> TextEncoder:
        """Load ``tokenizer.json`` from a model folder (raises ArtifactError when unusable)."""
        file = Path(path) / "tokenizer.json"
        if not file.is_file():
            raise ArtifactError(f"{file}: no tokenizer.json (a fast tokenizer file is required)")
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise ArtifactError(f"{file}: cannot load tokenizer: {e}") from e
        return cls(tokenizer, max_length, _pad_id(tokenizer, Path(path)))

    def _encodings(self, texts: Sequence[str]) -> list[Encoding]:
        # ``encode_batch_fast`` skips character offsets, which nothing here needs.
        encodings: list[Encoding] = self._encode_batch(list(texts), add_special_tokens=True)
        return encodings

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Tokenize ``texts`` into one batch padded to its own longest text."""
        encodings = self._encodings(texts)
        n = len(encodings)
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=n)
        longest = int(lengths.max()) if n else 0
        real = np.arange(longest, dtype=np.int64) < lengths[:, None]
        total = int(lengths.sum())

        def scatter(rows: chain[int], fill: int) -> IntArray:
            out = np.full((n, longest), fill, dtype=np.int64)
            out[real] = np.fromiter(rows, dtype=np.int64, count=total)
            return out

        return EncodedBatch(
            input_ids=scatter(chain.from_iterable(e.ids for e in encodings), self.pad_id),
            attention_mask=real.astype(np.int64),
            token_type_ids=scatter(chain.from_iterable(e.type_ids for e in encodings), 0),
            lengths=lengths,
            pad_id=self.pad_id,
        )

    def encode_ids(self, texts: Sequence[str]) -> TokenIds:
        """Tokenize ``texts`` without padding (what :meth:`encode` pads; see :meth:`pad`)."""
        encodings = self._encodings(texts)
        n = len(encodings)
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int32, count=n)
        total = int(lengths.sum())
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int32,
                          count=total)
        types = np.fromiter(chain.from_iterable(e.type_ids for e in encodings), dtype=np.int32,
                            count=total)
        return TokenIds(ids, lengths, types if types.any() else None)

    def pad(self, tokens: TokenIds) -> EncodedBatch:
        """``tokens`` as one batch padded to its own longest text: equal to :meth:`encode` of
        the texts they were made from, without calling the tokenizer."""
        lengths = tokens.lengths.astype(np.int64)
        n = len(lengths)
        longest = int(lengths.max()) if n else 0
        real = np.arange(longest, dtype=np.int64) < lengths[:, None]

        def scatter(flat: np.ndarray | None, fill: int) -> IntArray:
            out = np.full((n, longest), fill, dtype=np.int64)
            if flat is not None:
                out[real] = flat
            return out

        return EncodedBatch(
            input_ids=scatter(tokens.ids, self.pad_id),
            attention_mask=real.astype(np.int64),
            token_type_ids=scatter(tokens.type_ids, 0),
            lengths=lengths,
            pad_id=self.pad_id,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text after truncation (special tokens included)."""
        return [len(e) for e in self._encodings(texts)]
