"""TensorRT-only behaviour (the contract suite covers the rest). Skipped without tensorrt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineSpec
from engines.errors import ArtifactError, InferenceError
from engines.tokenization import TextEncoder
from tests.support import SAMPLE_TEXTS, TINY_MAX_BATCH, TINY_MAX_LENGTH
from tests.support.gpu import tensorrt_skip_reason

pytestmark = pytest.mark.skipif(
    tensorrt_skip_reason() is not None, reason=str(tensorrt_skip_reason())
)


def test_plan_agrees_with_onnxruntime(tiny_repository: Path, tiny_plan: Path) -> None:
    from engines.onnx_engine import load as load_onnx
    from engines.tensorrt_engine import load

    encoder = TextEncoder.from_dir(tiny_repository / "tiny-sentiment" / "1", TINY_MAX_LENGTH)
    feeds = encoder.encode(SAMPLE_TEXTS).as_inputs()
    engine = load(EngineSpec(artifact=tiny_plan, device="cuda", max_batch_size=TINY_MAX_BATCH))
    reference = load_onnx(EngineSpec(artifact=tiny_repository / "tiny-sentiment" / "1" / "model.onnx"))
    np.testing.assert_allclose(
        engine.run(feeds)["logits"], reference.run(feeds)["logits"], atol=1e-3
    )
    too_many = {n: np.concatenate([a] * 2) for n, a in feeds.items()}  # 10 rows > profile's 8
    with pytest.raises(InferenceError, match="optimization profile"):
        engine.run(too_many)
    engine.close()
    engine.close()


def test_corrupt_plan_is_an_artifact_error(tmp_path: Path) -> None:
    from engines.tensorrt_engine import load

    (tmp_path / "model.plan").write_bytes(b"not a plan" * 100)
    with pytest.raises(ArtifactError):
        load(EngineSpec(artifact=tmp_path / "model.plan", device="cuda"))
