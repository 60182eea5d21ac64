"""A loaded model's latency model starts from its timed warm-up, before any request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from server.metrics import Metrics
from server.repository.loader import load_version, read_config
from tests.support import TINY_MAX_BATCH, TINY_MAX_LENGTH


async def test_the_batcher_knows_the_engine_cost_from_warmup(tiny_repository: Path) -> None:
    folder = tiny_repository / "tiny-sentiment"
    with ThreadPoolExecutor(2) as executor:
        model = await load_version(folder, read_config(folder), 1, metrics=Metrics(),
                                   executor=executor, threads=1)
        try:
            small = model.batcher.latency.estimate(1, 16)
            large = model.batcher.latency.estimate(TINY_MAX_BATCH, TINY_MAX_BATCH * TINY_MAX_LENGTH)
            assert small is not None and large is not None
            assert 0 < small.compute_s <= large.compute_s
            assert small.prepare_s == large.prepare_s == 0.0  # learnt while serving
        finally:
            await model.stop(drain_timeout_s=5.0)
