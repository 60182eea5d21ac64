"""Tensor models: named numpy arrays in and out, the batch along the first axis.

Requests whose non-batch shapes differ cannot share one engine call, so ``execute`` runs one
call per distinct shape signature within the batch (Triton would not batch them at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from engines.base import Engine
from server.scheduler import PreparedBatch

TensorPayload = Mapping[str, np.ndarray]
TensorResult = dict[str, np.ndarray]


def _signature(payload: TensorPayload) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((name, tuple(a.shape[1:])) for name, a in payload.items()))


class TensorHandler:
    """The ``BatchHandler`` of a tensor model version."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        if not engines:
            raise ValueError("at least one engine instance is needed")
        self._engines = list(engines)

    def prepare(self, payloads: Sequence[TensorPayload]) -> PreparedBatch:
        groups: dict[tuple[tuple[str, tuple[int, ...]], ...], list[int]] = {}
        for i, payload in enumerate(payloads):
            groups.setdefault(_signature(payload), []).append(i)
        calls = []
        for members in groups.values():
            names = payloads[members[0]].keys()
            feeds = {
                name: np.concatenate([payloads[i][name] for i in members], axis=0)
                for name in names
            }
            rows = [int(next(iter(payloads[i].values())).shape[0]) for i in members]
            calls.append((members, feeds, rows))
        return PreparedBatch(data=(calls, len(payloads)))

    def execute(self, prepared: PreparedBatch, instance: int) -> list[TensorResult]:
        calls, n = prepared.data
        engine = self._engines[instance]
        results: list[TensorResult | None] = [None] * n
        for members, feeds, rows in calls:
            outputs = engine.run(feeds)
            total = sum(rows)
            for name, array in outputs.items():
                if array.shape[0] != total:
                    raise RuntimeError(
                        f"engine output {name!r} has {array.shape[0]} rows for {total} inputs"
                    )
            bounds = np.cumsum(rows)[:-1]
            split = {name: np.split(array, bounds) for name, array in outputs.items()}
            for j, i in enumerate(members):
                results[i] = {name: parts[j] for name, parts in split.items()}
        return [r for r in results if r is not None]
