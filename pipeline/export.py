"""Export a fine-tuned Hugging Face sequence classifier to ONNX.

The TorchScript exporter (``dynamo=False``) is used on purpose, with the model loaded with
``attn_implementation="eager"``: that is the graph ONNX Runtime's BERT optimizer recognises and
fuses into its Attention kernel (with SDPA it fuses layer norms and GELU only).

Only the ``.onnx`` file is written; where tokenizer files go is the caller's decision.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def uses_token_type_ids(config: Any) -> bool:
    """Whether a model's config gives token type ids any meaning (BERT does, RoBERTa doesn't)."""
    return int(getattr(config, "type_vocab_size", 0) or 0) > 1


def export_onnx(hf_dir: Path, onnx_path: Path, *, opset: int = 17) -> Path:
    """Export the classifier in ``hf_dir`` to ``onnx_path`` and return ``onnx_path``.

    Inputs are int64 ``input_ids``, ``attention_mask`` and (when the model uses them)
    ``token_type_ids``, each ``[batch, sequence]``; the output is float32 ``logits``
    ``[batch, num_labels]``. Batch and sequence axes are dynamic.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    hf_dir = Path(hf_dir)
    onnx_path = Path(onnx_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        hf_dir,
        attn_implementation="eager",
        use_safetensors=True,
        local_files_only=True,
        dtype=torch.float32,
    )
    model.eval()
    names = [n for n in TEXT_INPUTS if n != "token_type_ids" or uses_token_type_ids(model.config)]

    class _Logits(torch.nn.Module):
        """Positional inputs in ``names`` order, one ``logits`` output."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            out = self.inner(**dict(zip(names, tensors, strict=True)))
            logits: torch.Tensor = out.logits
            return logits

    # A ragged dummy batch, so that no mask branch is constant-folded for "no padding".
    batch, seq = 2, 8
    input_ids = torch.randint(1000, 2000, (batch, seq), dtype=torch.int64)
    attention_mask = torch.ones((batch, seq), dtype=torch.int64)
    attention_mask[1, 5:] = 0
    dummy = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros((batch, seq), dtype=torch.int64),
    }
    args = tuple(dummy[n] for n in names)
    dynamic_axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic_axes["logits"] = {0: "batch"}

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python bools in HF code
        torch.onnx.export(
            _Logits(model),
            args,
            str(onnx_path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx_path
