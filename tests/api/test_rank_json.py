"""/rank's response items, spliced from orjson's array dumps: the same JSON a dict per
candidate would give, scores read back as the same float32."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from server.api.rank import items_json


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_items_json_reads_back_as_the_ids_and_float32_scores(n: int) -> None:
    rng = np.random.default_rng(n)
    ids = rng.permutation(n).astype(np.int64) * 999_999_937 + 1
    scores = (rng.standard_normal(n) * 10.0 ** rng.integers(-9, 9, n)).astype(np.float32)
    items = orjson.loads(items_json(ids, scores))
    assert [x["item_id"] for x in items] == ids.tolist()
    assert np.array_equal(np.array([x["score"] for x in items], dtype=np.float32), scores)
    assert all(set(x) == {"item_id", "score"} for x in items)


def test_items_json_edge_values() -> None:
    ids = np.array([0, -1, 2**63 - 1, 5], dtype=np.int64)
    scores = np.array([np.nan, np.inf, -0.0, 1e-45], dtype=np.float32)
    assert orjson.loads(items_json(ids, scores)) == [
        {"item_id": 0, "score": None}, {"item_id": -1, "score": None},
        {"item_id": 2**63 - 1, "score": -0.0}, {"item_id": 5, "score": 1e-45},
    ]
    assert items_json(ids[:0], scores[:0]) == b"[]"
