"""``model_control_mode: poll``: each look applies what changed (driven directly, no sleeps)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.metrics import Metrics
from server.repository.poller import RepositoryPoller
from server.repository.registry import ModelRegistry
from tests.support.tensor_model import make_ranker_model


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[ModelRegistry]:
    make_ranker_model(tmp_path / "ranker")
    r = ModelRegistry(tmp_path, metrics=Metrics(), executor=ThreadPoolExecutor(2), threads=1,
                      drain_timeout_s=1.0)
    await r.load_all()
    yield r
    await r.close()


async def test_nothing_changed_nothing_done(registry: ModelRegistry) -> None:
    assert await RepositoryPoller(registry, 1.0).poll_once() == []


async def test_new_version_replaces_the_old_and_new_model_loads(registry: ModelRegistry) -> None:
    poller = RepositoryPoller(registry, 1.0)
    old = registry.get("ranker")
    folder = registry.repository / "ranker"
    shutil.copytree(folder / "1", folder / "tmp-2")
    (folder / "tmp-2").rename(folder / "2")  # copied aside, renamed into place
    make_ranker_model(registry.repository / "second")
    assert await poller.poll_once() == ["ranker", "second"]
    assert registry.get("ranker").version == 2 and registry.get("ranker") is not old
    assert old.batcher.pending_requests == 0
    assert registry.get("second").version == 1 and registry.is_ready()


async def test_broken_change_keeps_the_old_version_serving(
    registry: ModelRegistry,
) -> None:
    make_ranker_model(registry.repository / "second")
    poller = RepositoryPoller(registry, 1.0)
    served = registry.get("ranker")
    (registry.repository / "ranker" / "config.yaml").write_text("task: tensor\nbogus: 1\n")
    shutil.rmtree(registry.repository / "second")
    assert await poller.poll_once() == ["ranker"]  # "second" was never loaded: nothing to do
    assert registry.get("ranker") is served and registry.is_ready()


async def test_removed_loaded_model_is_unloaded(registry: ModelRegistry) -> None:
    make_ranker_model(registry.repository / "second")
    await registry.load("second")
    poller = RepositoryPoller(registry, 1.0)
    shutil.rmtree(registry.repository / "second")
    assert await poller.poll_once() == ["second"]
    assert [e.name for e in registry.entries() if e.state == "READY"] == ["ranker"]
    assert registry.is_ready()


class Stop(BaseException):
    """Ends the loop (run() itself survives any Exception from a look)."""


async def test_run_polls_on_each_tick(registry: ModelRegistry) -> None:
    ticks = 0

    async def wait(seconds: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 1:
            make_ranker_model(registry.repository / "third")
        if ticks == 3:
            raise Stop

    with pytest.raises(Stop):
        await RepositoryPoller(registry, 1.0, wait=wait).run()
    assert registry.get("third").version == 1
