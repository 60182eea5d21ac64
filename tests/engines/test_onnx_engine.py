"""What only the ONNX Runtime backend does: session options, non-text models, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engines.base import EngineSpec
from engines.errors import ArtifactError, BackendUnavailable
from engines.onnx_engine import load
from engines.options import UnsupportedSetting
from engines.tokenization import TextEncoder
from tests.support import SAMPLE_TEXTS, TINY_MAX_LENGTH


@pytest.fixture
def onnx_file(tiny_repository: Path) -> Path:
    return tiny_repository / "tiny-sentiment" / "1" / "model.onnx"


@pytest.fixture
def feeds(tiny_repository: Path) -> dict[str, np.ndarray]:
    encoder = TextEncoder.from_dir(tiny_repository / "tiny-sentiment" / "1", TINY_MAX_LENGTH)
    return encoder.encode(SAMPLE_TEXTS).as_inputs()


def test_optimization_levels_agree(onnx_file: Path, feeds: dict[str, np.ndarray]) -> None:
    results = []
    for level in ("disable", "basic", "all"):
        engine = load(
            EngineSpec(artifact=onnx_file, threads=1, options={"graph_optimization_level": level})
        )
        results.append(engine.run(feeds)["logits"])
        engine.close()
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], atol=1e-5)


def test_runs_on_the_cpu_provider_by_default(onnx_file: Path) -> None:
    engine = load(EngineSpec(artifact=onnx_file, threads=1))
    assert engine.providers == ["CPUExecutionProvider"]


def test_spinning_can_be_turned_off(onnx_file: Path, feeds: dict[str, np.ndarray]) -> None:
    engine = load(EngineSpec(artifact=onnx_file, threads=1, options={"allow_spinning": False}))
    assert engine.run(feeds)["logits"].shape == (len(SAMPLE_TEXTS), 3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"graph_optimization_level": "max"}, "graph_optimization_level"),
        ({"graph_optimisation_level": "all"}, "unknown engine option"),
    ],
)
def test_bad_options_are_rejected(onnx_file: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(UnsupportedSetting, match=message):
        load(EngineSpec(artifact=onnx_file, options=options))


def test_cuda_without_the_gpu_build_says_how_to_install_it(onnx_file: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendUnavailable, match=r"sluice\[gpu\]"):
        load(EngineSpec(artifact=onnx_file, device="cuda"))


def test_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such ONNX file"):
        load(EngineSpec(artifact=tmp_path / "model.onnx"))


def test_corrupt_file_is_an_artifact_error(onnx_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    data = onnx_file.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match="cannot load"):
        load(EngineSpec(artifact=broken))


def test_a_folder_is_not_an_onnx_file(onnx_file: Path, tmp_path: Path) -> None:
    shutil.copy(onnx_file, tmp_path / "model.onnx")
    with pytest.raises(ArtifactError):
        load(EngineSpec(artifact=tmp_path))


def _tensor_model(path: Path) -> Path:
    """y = x + 1 over FP32 [batch, 4], plus an INT32 [batch] count passed through."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    n = helper.make_tensor_value_info("n", TensorProto.INT32, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    m = helper.make_tensor_value_info("m", TensorProto.INT32, ["batch"])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"]), helper.make_node("Identity", ["n"], ["m"])],
        "tensor_model",
        [x, n],
        [y, m],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_non_text_model_describes_and_runs(tmp_path: Path) -> None:
    engine = load(EngineSpec(artifact=_tensor_model(tmp_path / "model.onnx")))
    assert [(t.name, t.datatype, t.shape) for t in engine.inputs] == [
        ("x", "FP32", (-1, 4)),
        ("n", "INT32", (-1,)),
    ]
    assert [(t.name, t.datatype, t.shape) for t in engine.outputs] == [
        ("y", "FP32", (-1, 4)),
        ("m", "INT32", (-1,)),
    ]
    engine.warmup()
    out = engine.run({"x": np.arange(8, dtype=np.float64).reshape(2, 4), "n": [3, 4]})
    np.testing.assert_array_equal(out["y"], np.arange(1, 9, dtype=np.float32).reshape(2, 4))
    assert out["y"].dtype == np.float32
    np.testing.assert_array_equal(out["m"], [3, 4])
