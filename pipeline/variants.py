"""Turn an exported fp32 ONNX classifier into the served variants.

fp32 graph -> BERT-fused graph (ONNX Runtime's transformer optimizer) -> int8 dynamic (CPU),
fp16 (GPU), and optionally static int8 with calibration, which is kept only when it beats
dynamic int8.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("sluice.pipeline")


def optimize_bert(src: Path, dst: Path, *, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Fuse attention, layer norm, GELU and embeddings; returns the fused-operator counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, use_gpu=False
    )
    counts: dict[str, int] = {k: int(v) for k, v in model.get_fused_operator_statistics().items()}
    model.save_model_to_file(str(dst))
    return counts


def quantize_int8_dynamic(src: Path, dst: Path) -> Path:
    """int8 weights, activations quantized on the fly: the CPU default.

    ``DefaultTensorType`` is needed on the fused graph, whose custom ops hide tensor types from
    the quantizer's shape inference (without it ``quantize_dynamic`` fails on that graph).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return dst


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and compute with fp32 inputs and outputs (``keep_io_types``), for GPUs."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))
    return dst


def quantize_int8_static(src: Path, dst: Path, batches: Sequence[dict[str, np.ndarray]]) -> Path:
    """int8 weights and activations of the MatMuls, ranges calibrated on ``batches``.

    Only MatMul is quantized: quantizing everything trips over the pooler's Gather, whose
    calibrated range is degenerate (no valid scale for the bias after it).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self._it, None)

    quantize_static(
        str(src),
        str(dst),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=False,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return dst
