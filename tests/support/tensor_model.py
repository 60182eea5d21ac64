"""A small real ONNX ranking model for the ``tensor`` task: score = features @ w + b."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WEIGHTS = np.array([[0.5], [-1.0], [2.0], [0.25]], dtype=np.float32)
BIAS = np.array([0.1], dtype=np.float32)


def make_ranker_model(folder: Path) -> Path:
    """Write ``folder/config.yaml`` and ``folder/1/model.onnx``; returns ``folder``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["score"])],
        "ranker", [x], [y],
        initializer=[numpy_helper.from_array(WEIGHTS, "w"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "1" / "model.onnx")
    (folder / "config.yaml").write_text(
        "task: tensor\n"
        "description: linear ranker for tests\n"
        "engine: {backend: onnxruntime}\n"
        "batching: {max_batch_size: 64, max_queue_delay_us: 5000}\n"
        "inputs: [{name: features, datatype: FP32, dims: [4]}]\n"
        "outputs: [{name: score, datatype: FP32, dims: [1]}]\n"
    )
    return folder


def expected_scores(features: np.ndarray) -> np.ndarray:
    return features.astype(np.float32) @ WEIGHTS + BIAS
