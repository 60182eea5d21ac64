"""Feature gathering for ranking models: (user id, candidate item ids) -> the model's input arrays.

The tables are the ones the pipeline wrote next to the model (``pipeline/ranker``), indexed by
raw id, row 0 being the fallback for unknown ids:

- ``user_features.npy``: int64 ``[n_users + 1, 3]`` (occupation, age bucket, gender)
- ``item_features.npy``: float32 ``[n_items + 1, n_genres]`` (genre multi-hot)
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.scores import top_k_indices
from server.errors import ConfigError, InvalidInput, PayloadTooLarge
from server.scheduler.parts import submit_parts
from server.scheduler.timings import Timings

USER_TABLE = "user_features.npy"
ITEM_TABLE = "item_features.npy"


@dataclass(frozen=True)
class RankingTables:
    users: np.ndarray
    items: np.ndarray
    fallback: bool = False
    """Score unknown ids with row 0 (the untrained fallback embedding) instead of refusing them."""

    @classmethod
    def load(
        cls, folder: Path, *, user_table: str = USER_TABLE, item_table: str = ITEM_TABLE,
        fallback: bool = False,
    ) -> RankingTables:  # fmt: skip
        users = np.load(folder / user_table)
        items = np.load(folder / item_table)
        return cls(users.astype(np.int64), items.astype(np.float32), fallback)

    def _ids(self, field: str, ids: np.ndarray, size: int) -> np.ndarray:
        bad = (ids < 1) | (ids >= size)
        if not bad.any():
            return ids
        if self.fallback:
            return np.where(bad, 0, ids)
        unknown = sorted(set(ids[bad].tolist()))
        shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        raise InvalidInput(f"{field}: unknown id(s) {shown} (not in the model's feature tables)")

    def gather(self, user_id: int, item_ids: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """The input arrays for ``user_id`` against each of ``item_ids`` (one row per candidate)."""
        items = self._ids("item_ids", _int64("item_ids", item_ids), self.items.shape[0])
        user = self._ids("user_id", _int64("user_id", [user_id]), self.users.shape[0])
        n = len(items)
        u = self.users[user[0]]
        return {
            "user": np.full(n, user[0], dtype=np.int64),
            "item": items,
            "occupation": np.full(n, u[0], dtype=np.int64),
            "age": np.full(n, u[1], dtype=np.int64),
            "gender": np.full(n, u[2], dtype=np.int64),
            "genres": self.items[items],
        }


def _int64(field: str, ids: Sequence[int] | np.ndarray) -> np.ndarray:
    try:
        return np.asarray(ids, dtype=np.int64)
    except OverflowError as e:  # a JSON integer beyond int64 is no id of the tables either
        raise InvalidInput(f"{field}: id out of range (not in the model's feature tables)") from e


#: Per loaded model version, dropped with it (a reload reads the new version's tables).
#: (ModelVersion is an unhashable dataclass: keyed by id, removed when the version is freed.)
_TABLES: dict[int, RankingTables] = {}


def tables_for(model: Any) -> RankingTables:
    """The feature tables of a loaded ranking model version (read once, then cached)."""
    cfg = model.config.ranking
    tables = _TABLES.get(id(model))
    if tables is None:
        folder = Path(model.path)
        try:
            tables = RankingTables.load(
                folder, user_table=cfg.user_table, item_table=cfg.item_table,
                fallback=cfg.fallback_unknown,
            )  # fmt: skip
        except OSError as e:
            raise ConfigError(f"{folder}: ranking feature tables unreadable: {e}") from e
        _TABLES[id(model)] = tables
        weakref.finalize(model, _TABLES.pop, id(model), None)
    return tables


@dataclass(frozen=True)
class Ranked:
    """Candidates best first: ``item_ids[i]`` (int64) scored ``scores[i]`` (float32)."""

    item_ids: np.ndarray
    scores: np.ndarray


async def rank(
    model: Any, user_id: int, item_ids: Sequence[int], top_k: int | None,
    timeout_us: int | None = None, priority: int = 0, timings: Timings | None = None,
) -> Ranked:  # fmt: skip
    """Score ``item_ids`` for ``user_id`` on ``model``, best first (the ``top_k`` best when
    given). ``timings``, when given, receives the stage durations of the request's parts."""
    cfg = model.config.ranking
    if model.config.task != "ranking":
        raise InvalidInput(f"model '{model.name}' is not a ranking model (task {model.config.task})")
    if not item_ids:
        raise InvalidInput("item_ids: at least one candidate is needed")
    if len(item_ids) > cfg.max_candidates:
        raise PayloadTooLarge(
            f"item_ids: {len(item_ids)} candidates; model '{model.name}' takes at most "
            f"{cfg.max_candidates} (ranking.max_candidates)"
        )
    ids = _int64("item_ids", item_ids)  # once: gather and the answer share it
    feeds = tables_for(model).gather(user_id, ids)
    outputs = await submit_parts(
        model.batcher, feeds, part_size=cfg.part_size, timeout_us=timeout_us, priority=priority,
        timings=timings,
    )  # fmt: skip
    scores = np.asarray(outputs[model.outputs[0].name], dtype=np.float32).reshape(-1)
    order = top_k_indices(scores, top_k)
    # The ids as the client sent them (fallback rows score an unknown id under its own id).
    return Ranked(ids[order], scores[order])
