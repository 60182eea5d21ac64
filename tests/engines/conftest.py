"""Fixtures for the engine suite: an engine per backend over the shared ``tiny_repository``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.base import Engine, EngineSpec
from engines.registry import load_engine
from tests.support import TINY_MAX_BATCH, TINY_MAX_LENGTH
from tests.support.gpu import tensorrt_skip_reason

BACKENDS = ("onnxruntime", "torch", "tensorrt")


def skip_reason(backend: str) -> str | None:
    """Why ``backend`` can't run here, or None."""
    return tensorrt_skip_reason() if backend == "tensorrt" else None


@pytest.fixture(scope="session")
def tiny_plan(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TensorRT plan of the tiny model (only built where tensorrt runs)."""
    from pipeline.tensorrt_plan import build_plan

    return build_plan(
        tiny_repository / "tiny-sentiment" / "1" / "model.onnx",
        tmp_path_factory.mktemp("plan") / "model.plan",
        fp16=False,
        min_shape=(1, 1),
        opt_shape=(TINY_MAX_BATCH, 32),
        max_shape=(TINY_MAX_BATCH, TINY_MAX_LENGTH),
    )


def engine_spec(backend: str, tiny_repository: Path, request: pytest.FixtureRequest) -> EngineSpec:
    if backend == "onnxruntime":
        artifact, device = tiny_repository / "tiny-sentiment" / "1" / "model.onnx", "cpu"
    elif backend == "torch":
        artifact, device = tiny_repository / "tiny-sentiment-torch" / "1", "cpu"
    else:
        artifact, device = request.getfixturevalue("tiny_plan"), "cuda"
    return EngineSpec(
        artifact=artifact,
        device=device,
        threads=1,
        max_batch_size=TINY_MAX_BATCH,
        max_length=TINY_MAX_LENGTH,
    )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    reason = skip_reason(name)
    if reason is not None:
        pytest.skip(reason)
    return name


@pytest.fixture
def engine(backend: str, tiny_repository: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    loaded = load_engine(backend, engine_spec(backend, tiny_repository, request))
    yield loaded
    loaded.close()
