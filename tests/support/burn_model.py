"""A real ONNX model whose compute time the request chooses: it burns CPU, it never sleeps.

``tensor`` task; input ``n`` (INT64, ``[batch, 1]``), output ``y`` (FP32, ``[batch, 1]``) = ``n``.
Behind the identity, an ONNX ``Loop`` runs ``max(n)`` times over the batch, each iteration a
``SIZE x SIZE`` matrix product and a ``tanh`` (so ``n`` sets the batch's compute time, linearly,
on real ONNX Runtime cores), and its result is folded into ``y`` times zero so that no optimizer
may drop it. Warm-up feeds zeros: no iterations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 256


def make_burn_model(folder: Path, batching: str = "{max_batch_size: 1, max_queue_delay_us: 0}") -> Path:
    """Write ``folder/config.yaml`` (``batching``: a YAML mapping) and ``folder/1/model.onnx``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((SIZE, SIZE)) / np.sqrt(SIZE)).astype(np.float32)
    start = rng.standard_normal((SIZE, SIZE)).astype(np.float32)

    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "w"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "burn_step",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [SIZE, SIZE]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [SIZE, SIZE]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["n"], ["trips"], keepdims=0),
            helper.make_node("Loop", ["trips", "keep_going", "start"], ["burnt"], body=body),
            helper.make_node("ReduceSum", ["burnt"], ["total"], keepdims=0),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Cast", ["n"], ["n_float"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["n_float", "nothing"], ["y"]),
        ],
        "burn",
        [helper.make_tensor_value_info("n", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(start, "start"),
            numpy_helper.from_array(np.array(True), "keep_going"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "1" / "model.onnx")
    (folder / "config.yaml").write_text(
        "task: tensor\n"
        "description: burns n matrix products of CPU per batch, for scheduling tests\n"
        "engine: {backend: onnxruntime, threads: 1}\n"
        f"batching: {batching}\n"
        "inputs: [{name: n, datatype: INT64, dims: [1]}]\n"
        "outputs: [{name: y, datatype: FP32, dims: [1]}]\n"
    )
    return folder


def infer_body(n: int, **parameters: int) -> dict[str, object]:
    """A v2 infer request body asking for ``n`` iterations."""
    body: dict[str, object] = {"inputs": [{"name": "n", "shape": [1, 1], "datatype": "INT64",
                                           "data": [n]}]}
    if parameters:
        body["parameters"] = parameters
    return body
