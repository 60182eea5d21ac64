"""The torch backend's CUDA paths: CUDA graphs per bucket and torch.compile.

Skipped without a GPU; on a GPU machine run ``python -m pytest tests/engines -k cuda``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineSpec
from engines.tokenization import TextEncoder
from engines.torch_cuda import CompiledRunner, GraphRunner
from engines.torch_engine import TorchEngine, load
from tests.support import SAMPLE_TEXTS, TINY_MAX_BATCH, TINY_MAX_LENGTH
from tests.support.gpu import cuda_available

pytestmark = pytest.mark.skipif(
    not cuda_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
)


@pytest.fixture(scope="module")
def hf_dir(tiny_repository: Path) -> Path:
    return tiny_repository / "tiny-sentiment-torch" / "1"


@pytest.fixture(scope="module")
def feeds(tiny_repository: Path) -> dict[str, np.ndarray]:
    encoder = TextEncoder.from_dir(tiny_repository / "tiny-sentiment" / "1", TINY_MAX_LENGTH)
    return encoder.encode(SAMPLE_TEXTS).as_inputs()


def _load(hf_dir: Path, **changes: object) -> TorchEngine:
    spec = EngineSpec(
        artifact=hf_dir, device="cuda", max_batch_size=TINY_MAX_BATCH, max_length=TINY_MAX_LENGTH
    )
    fields = {**spec.__dict__, **changes}
    return load(EngineSpec(**fields))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def eager_logits(hf_dir: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    engine = _load(hf_dir)
    logits = engine.run(feeds)["logits"]
    engine.close()
    return logits


def test_cuda_graphs_match_eager_and_capture_every_bucket(
    hf_dir: Path, feeds: dict[str, np.ndarray], eager_logits: np.ndarray
) -> None:
    engine = _load(hf_dir, options={"cuda_graphs": True})
    runner = engine._fast_path
    assert isinstance(runner, GraphRunner)
    engine.warmup()
    assert len(runner.captured) == len(runner.batch_buckets) * len(runner.seq_buckets)
    np.testing.assert_allclose(engine.run(feeds)["logits"], eager_logits, atol=1e-4)
    for i in range(len(SAMPLE_TEXTS)):  # every row alone: other buckets, same logits
        one = {name: a[i : i + 1] for name, a in feeds.items()}
        np.testing.assert_allclose(engine.run(one)["logits"][0], eager_logits[i], atol=1e-4)
    engine.close()
    engine.close()


def test_batch_beyond_the_buckets_runs_eagerly(
    hf_dir: Path, feeds: dict[str, np.ndarray], eager_logits: np.ndarray
) -> None:
    engine = _load(hf_dir, options={"cuda_graphs": True, "batch_buckets": [1, 2]})
    np.testing.assert_allclose(engine.run(feeds)["logits"], eager_logits, atol=1e-4)
    runner = engine._fast_path
    assert isinstance(runner, GraphRunner)
    assert runner.captured == []  # 5 rows: no bucket, so no graph was captured
    engine.close()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_stays_close_to_fp32(
    hf_dir: Path, feeds: dict[str, np.ndarray], eager_logits: np.ndarray, precision: str
) -> None:
    engine = _load(hf_dir, precision=precision, options={"cuda_graphs": True})
    logits = engine.run(feeds)["logits"]
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, eager_logits, atol=5e-2, rtol=5e-2)
    engine.close()


@pytest.mark.slow
def test_torch_compile_reduce_overhead_matches_eager(
    hf_dir: Path, feeds: dict[str, np.ndarray], eager_logits: np.ndarray
) -> None:
    engine = _load(
        hf_dir,
        options={"compile": "reduce-overhead", "batch_buckets": [8], "seq_buckets": [64]},
    )
    assert isinstance(engine._fast_path, CompiledRunner)
    engine.warmup()
    np.testing.assert_allclose(engine.run(feeds)["logits"], eager_logits, atol=1e-3)
    engine.close()
