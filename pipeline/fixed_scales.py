"""Batch-invariant int8: the dynamic int8 graph with its activation scales fixed by calibration.

ONNX Runtime's dynamic quantization (``DynamicQuantizeLinear``) computes one scale and zero
point per tensor, that is over the whole batch and its padding, so a text's answer depends on
its batch-mates. This rewrite keeps the dynamic graph's fused operators (``QAttention``,
``MatMulInteger``, quantized embeddings: the fast kernels) and replaces each
``DynamicQuantizeLinear`` with a ``QuantizeLinear`` whose scale and zero point are constants,
the range (min and max over real tokens, padding left out) its input takes on calibration
texts. Every other operator works per token or per text, and integer accumulation is exact, so
a text's answer no longer depends on what it is batched with (up to float rounding order).

Values outside the calibrated range saturate, as in any static quantization; the card's
accuracy shows what that costs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("sluice.pipeline")


def calibrated_ranges(
    model_path: Path, batches: Sequence[dict[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """Per ``DynamicQuantizeLinear`` input: (min, max) over ``batches``' real tokens, each
    widened to include 0 (as the operator itself does)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    names = [n.input[0] for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            have.add(name)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    lo = dict.fromkeys(names, 0.0)
    hi = dict.fromkeys(names, 0.0)
    for feeds in batches:
        mask = feeds["attention_mask"].astype(bool)
        for name, value in zip(names, sess.run(names, feeds), strict=True):
            real = value[mask] if value.shape[:2] == mask.shape else value
            lo[name] = min(lo[name], float(real.min()))
            hi[name] = max(hi[name], float(real.max()))
    return {n: (lo[n], hi[n]) for n in names}


def _scale_zero_point(lo: float, hi: float) -> tuple[float, int]:
    """uint8 asymmetric scale and zero point of ``[lo, hi]`` (``DynamicQuantizeLinear``'s formula)."""
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def fix_activation_scales(
    src: Path, dst: Path, batches: Sequence[dict[str, np.ndarray]]
) -> dict[str, tuple[float, float]]:
    """Write ``src`` (a ``quantize_dynamic`` graph) to ``dst`` with every activation scale and
    zero point fixed from ``batches``; returns the calibrated ranges."""
    import onnx
    from onnx import helper, numpy_helper

    ranges = calibrated_ranges(src, batches)
    model = onnx.load(str(src))
    graph = model.graph
    nodes, scales = [], set()
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (q, s, zp) = node.input[0], node.output
        scale, zero = _scale_zero_point(*ranges[x])
        scales.add(s)
        graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, dtype=np.float32), s),
            numpy_helper.from_array(np.array(zero, dtype=np.uint8), zp),
        ])  # fmt: skip
        nodes.append(helper.make_node("QuantizeLinear", [x, s, zp], [q], name=f"{node.name}_fixed"))
    del graph.node[:]
    graph.node.extend(_to_float_matmuls(nodes, scales))
    if not any(o.domain in ("", "ai.onnx") and o.version >= 13 for o in model.opset_import):
        raise ValueError("fixed scales need opset 13 or later (QuantizeLinear)")
    onnx.save(model, str(dst))
    log.info("fixed %d activation scales in %s", len(ranges), dst)
    return ranges


def _to_float_matmuls(nodes: list[Any], scales: set[str]) -> list[Any]:
    """Fold each ``MatMulInteger -> Cast -> Mul(a_scale * b_scale)`` into one
    ``MatMulIntegerToFloat`` (com.microsoft), the kernel the dynamic graph's fused operator
    uses. ONNX Runtime would fuse it itself, but its constant folding first turns the now
    constant ``a_scale * b_scale`` into one number and the fusion no longer sees the pattern."""
    from onnx import helper

    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    dropped: set[int] = set()
    replaced: dict[int, Any] = {}
    for mm in nodes:
        if mm.op_type != "MatMulInteger":
            continue
        cast = _only(consumers.get(mm.output[0], []), "Cast")
        mul = _only(consumers.get(cast.output[0], []), "Mul") if cast is not None else None
        if cast is None or mul is None:
            continue
        product = producer.get(next(i for i in mul.input if i != cast.output[0]))
        if product is None or product.op_type != "Mul" or len(consumers[product.output[0]]) != 1:
            continue
        a_scale = [i for i in product.input if i in scales]
        if len(a_scale) != 1:
            continue
        b_scale = next(i for i in product.input if i != a_scale[0])
        a, b, a_zp, b_zp = mm.input
        replaced[id(mm)] = helper.make_node(
            "MatMulIntegerToFloat", [a, b, a_scale[0], b_scale, a_zp, b_zp], [mul.output[0]],
            name=f"{mm.name}_to_float", domain="com.microsoft",
        )  # fmt: skip
        dropped.update({id(cast), id(mul), id(product)})
    return [replaced.get(id(n), n) for n in nodes if id(n) not in dropped]


def _only(nodes: list[Any], op_type: str) -> Any | None:
    return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None
