"""The registry acts only on model folders in scope; readiness counts only wanted models.

Real ONNX Runtime on the small ranker model (tests/support/tensor_model.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.errors import ModelNotFound
from server.metrics import Metrics
from server.repository.registry import ModelRegistry
from tests.support.tensor_model import make_ranker_model


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    make_ranker_model(tmp_path / "ranker")
    make_ranker_model(tmp_path / "other")
    return tmp_path


async def _registry(repository: Path, only: tuple[str, ...] = ()) -> ModelRegistry:
    registry = ModelRegistry(repository, metrics=Metrics(), executor=ThreadPoolExecutor(2),
                             threads=1, only=only, drain_timeout_s=1.0)
    await registry.load_all()
    return registry


@pytest.fixture
async def registry(repository: Path) -> AsyncIterator[ModelRegistry]:
    r = await _registry(repository, only=("ranker",))
    yield r
    await r.close()


async def test_unknown_name_leaves_no_entry_and_readiness_stays(registry: ModelRegistry) -> None:
    assert registry.is_ready()
    for name in ("nope", "..", "ranker/../other", ""):
        with pytest.raises(ModelNotFound):
            await registry.load(name)
    assert [e.name for e in registry.entries()] == ["ranker"]
    assert registry.is_ready()
    assert [e.name for e in registry.index()] == ["ranker"]


async def test_a_model_outside_models_is_never_touched(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFound, match="--models: ranker"):
        await registry.load("other")
    with pytest.raises(ModelNotFound, match="--models: ranker"):
        await registry.unload("other")
    assert [e.name for e in registry.entries()] == ["ranker"]


async def test_index_changes_nothing(repository: Path) -> None:
    r = await _registry(repository, only=("ranker",))
    try:
        (repository / "late").mkdir()
        (repository / "late" / "config.yaml").write_text("task: tensor\n")
        r._only = ()  # as if started without --models: the index now lists every folder
        names = [(e.name, e.state) for e in r.index()]
        assert ("late", "UNAVAILABLE") in names and ("other", "UNAVAILABLE") in names
        assert r.is_ready() and [e.name for e in r.entries()] == ["ranker"]
    finally:
        await r.close()


async def test_failed_reload_keeps_the_old_version_serving_and_ready(
    registry: ModelRegistry, repository: Path
) -> None:
    served = registry.get("ranker")
    (repository / "ranker" / "config.yaml").write_text("task: tensor\nbatching: {nope: 1}\n")
    entry = await registry.load("ranker")
    assert entry.last_error and entry.state == "READY"
    assert registry.get("ranker") is served
    assert registry.is_ready()


async def test_unloaded_model_no_longer_counts_for_readiness(repository: Path) -> None:
    r = await _registry(repository)
    try:
        await r.unload("other")
        assert r.is_ready()
        (repository / "other" / "config.yaml").write_text("task: tensor\nbatching: {nope: 1}\n")
        await r.load("other")
        assert not r.is_ready()  # a model asked to serve that does not: strict, as Triton
        await r.unload("other")
        assert r.is_ready()
    finally:
        await r.close()
