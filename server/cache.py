"""A bounded response cache for text models, with in-flight de-duplication.

Customer-service traffic repeats itself ("where is my bag?"). Keyed by the model version (one
cache per version) and the text with whitespace collapsed (BERT tokenizers ignore the difference).
Identical texts in flight at once are computed once: later askers await the first one's result.
Off by default (``SLUICE_RESPONSE_CACHE_SIZE``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from server.errors import RequestCancelled


def normalise(text: str) -> str:
    return " ".join(text.split())


class ResponseCache:
    """LRU of text -> probability row, at most ``capacity`` entries."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[np.ndarray]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def _remember(self, key: str, row: np.ndarray) -> None:
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    async def probabilities(
        self,
        texts: Sequence[str],
        compute: Callable[[tuple[str, ...]], Awaitable[np.ndarray]],
    ) -> tuple[np.ndarray, int]:
        """Rows for ``texts`` (one per text, in order) and how many came from the cache.

        ``compute`` is called at most once, with the texts nobody has or is computing.
        """
        keys = [normalise(t) for t in texts]
        rows: list[np.ndarray | None] = [None] * len(keys)
        waiting: list[tuple[int, asyncio.Future[np.ndarray]]] = []
        todo: dict[str, list[int]] = {}
        hits = 0
        for i, key in enumerate(keys):
            cached = self._rows.get(key)
            if cached is not None:
                self._rows.move_to_end(key)
                rows[i] = cached
                hits += 1
            elif key in self._inflight:
                waiting.append((i, self._inflight[key]))
                hits += 1
            else:
                hits += key in todo  # a repeat within this request is computed once too
                todo.setdefault(key, []).append(i)
        self.hits += hits
        self.misses += len(keys) - hits
        if todo:
            loop = asyncio.get_running_loop()
            mine = {key: loop.create_future() for key in todo}
            self._inflight.update(mine)
            try:
                computed = await compute(tuple(texts[idx[0]] for idx in todo.values()))
                for (key, indices), row in zip(todo.items(), computed, strict=True):
                    self._remember(key, row)
                    for i in indices:
                        rows[i] = row
                    if not mine[key].done():
                        mine[key].set_result(row)
            except BaseException as e:
                for fut in mine.values():
                    if not fut.done():
                        fut.set_exception(e if isinstance(e, Exception) else
                                          RequestCancelled("the first asker went away"))
                        fut.exception()  # mark retrieved: waiters may be gone
                raise
            finally:
                for key in mine:
                    if self._inflight.get(key) is mine[key]:
                        del self._inflight[key]
        for i, fut in waiting:
            try:
                rows[i] = await asyncio.shield(fut)
            except RequestCancelled:  # the request computing it went away: compute it here
                rows[i] = (await compute((texts[i],)))[0]
        return np.stack([r for r in rows if r is not None]), hits
