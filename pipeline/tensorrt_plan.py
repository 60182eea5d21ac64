"""Build a TensorRT plan (``model.plan``) from an ONNX file: tooling, not serving code.

The server only deserializes plans (:mod:`engines.tensorrt_engine`); building one takes
minutes and a GPU, so it happens once per GPU model and TensorRT version, ahead of serving.
``tensorrt`` is imported inside the function: importing this module is free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engines.errors import ArtifactError
from engines.tensorrt_engine import Shape, import_tensorrt


def build_plan(
    onnx_path: Path,
    plan_path: Path,
    *,
    fp16: bool,
    min_shape: Shape,
    opt_shape: Shape,
    max_shape: Shape,
    workspace_bytes: int = 1 << 30,
    input_shapes: Mapping[str, tuple[Shape, Shape, Shape]] | None = None,
) -> Path:
    """Build a TensorRT plan from an ONNX file with one optimization profile.

    ``min_shape``/``opt_shape``/``max_shape`` (``(batch, sequence)`` for a text model) apply to
    every network input unless ``input_shapes`` gives an input its own ``(min, opt, max)``.
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        low, opt, high = (input_shapes or {}).get(name, (min_shape, opt_shape, max_shape))
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"{onnx_path}: TensorRT failed to build a plan (see its log)")
    plan_path = Path(plan_path)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))
    return plan_path
