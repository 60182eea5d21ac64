"""PyTorch backend: a Hugging Face sequence classifier loaded from a local folder.

Weights load from safetensors only: a pickled ``pytorch_model.bin`` can run arbitrary code
when unpickled, so it is refused rather than loaded. Nothing is fetched from the Hub.

Options (``spec.options``):

- ``cuda_graphs`` (bool, cuda only): capture one CUDA graph per (batch, sequence) bucket.
- ``compile`` (``"reduce-overhead"``, cuda only): ``torch.compile`` over the same buckets;
  takes precedence over ``cuda_graphs`` (it replays CUDA graphs itself). Warm-up compiles
  every bucket: seconds each.
- ``batch_buckets`` / ``seq_buckets`` (lists of ints): the buckets; by default powers of two
  up to ``max_batch_size`` and from 16 up to ``max_length``.
- ``attn_implementation``: passed to ``from_pretrained`` (``sdpa`` by default, or ``eager``).

``threads`` > 0 calls ``torch.set_num_threads``, which is process-wide in PyTorch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.backend import BackendEngine
from engines.base import EngineSpec, TensorSpec
from engines.errors import ArtifactError, BackendUnavailable, EngineOutOfMemory, InferenceError
from engines.options import UnsupportedSetting, check_options, cuda_index
from engines.torch_buckets import default_buckets, parse_buckets
from engines.torch_cuda import CompiledRunner, GraphRunner
from engines.warmup import SHORT_SEQUENCE

KNOWN_OPTIONS = ("cuda_graphs", "compile", "batch_buckets", "seq_buckets", "attn_implementation")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_COMPILE_MODES = ("reduce-overhead",)


def uses_token_type_ids(config: Any) -> bool:
    """Whether a model's config gives token type ids any meaning (BERT does, RoBERTa doesn't)."""
    return int(getattr(config, "type_vocab_size", 0) or 0) > 1


def _check_weights(folder: Path) -> None:
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a folder (the torch backend loads a HF model folder)")
    if not (folder / "config.json").is_file():
        raise ArtifactError(f"{folder}: no config.json")
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.glob("*.bin"))
    if pickled:
        raise ArtifactError(
            f"{folder}: only pickle weights ({', '.join(pickled)}); refusing to unpickle them. "
            "Re-save the model with save_pretrained(..., safe_serialization=True)."
        )
    raise ArtifactError(f"{folder}: no *.safetensors weights")


def _device(spec: EngineSpec) -> torch.device:
    index = cuda_index(spec.device)
    if index is None:
        if spec.precision != "fp32":
            raise UnsupportedSetting(f"precision {spec.precision} needs cuda; use fp32 on cpu")
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"device {spec.device} requested but this torch build sees no GPU "
            f"(torch {torch.__version__}); install a CUDA build of torch or use device cpu"
        )
    if index >= torch.cuda.device_count():
        raise BackendUnavailable(f"device {spec.device}: only {torch.cuda.device_count()} GPU(s)")
    return torch.device("cuda", index)


class TorchEngine(BackendEngine):
    """An :class:`engines.base.Engine` running a HF ``*ForSequenceClassification`` model."""

    def __init__(
        self,
        model: torch.nn.Module,
        spec: EngineSpec,
        device: torch.device,
        input_names: Sequence[str],
        num_labels: int,
        fast_path: GraphRunner | CompiledRunner | None = None,
    ) -> None:
        names = list(input_names)
        super().__init__(
            spec,
            (TensorSpec(n, "INT64", (-1, -1)) for n in names),
            (TensorSpec("logits", "FP32", (-1, num_labels)),),
        )
        self._model: torch.nn.Module | None = model
        self._device = device
        self._names = names
        self._fast_path = fast_path

    @property
    def device(self) -> torch.device:
        return self._device

    def _eager(self, model: torch.nn.Module, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            feeds = {n: torch.from_numpy(arrays[n]).to(self._device) for n in self._names}
            logits: torch.Tensor = model(**feeds).logits
            result: np.ndarray = logits.float().cpu().numpy()
            return result

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        model = self._model
        if model is None:  # closed by another thread since run's check
            raise InferenceError("engine is closed")
        arrays = {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in self._names}
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise InferenceError(f"inputs must share one [batch, sequence] shape, got {shapes}")
        try:
            logits = self._fast_path.run(arrays) if self._fast_path is not None else None
            if logits is None:  # no fast path, or a batch beyond the largest bucket
                logits = self._eager(model, arrays)
        except torch.cuda.OutOfMemoryError as e:
            raise EngineOutOfMemory(f"torch forward pass ran out of CUDA memory: {e}") from e
        except Exception as e:
            raise InferenceError(f"torch forward pass failed: {e}") from e
        return {"logits": logits}

    def _before_warmup(self) -> None:
        if isinstance(self._fast_path, GraphRunner):
            self._fast_path.capture_all()
        elif isinstance(self._fast_path, CompiledRunner):
            self._fast_path.warm_all()

    def _release(self) -> None:
        if self._fast_path is not None:
            self._fast_path.close()
            self._fast_path = None
        self._model = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()  # hand the freed blocks back to the driver


def _fast_path(
    spec: EngineSpec, model: torch.nn.Module, names: Sequence[str], device: torch.device
) -> GraphRunner | CompiledRunner | None:
    compile_mode = spec.options.get("compile")
    graphs = bool(spec.options.get("cuda_graphs", False))
    if compile_mode is None and not graphs:
        return None
    if device.type != "cuda":
        raise UnsupportedSetting("engine options cuda_graphs and compile need a cuda device")
    batch_buckets = parse_buckets(
        spec.options.get("batch_buckets"), "batch_buckets", default_buckets(spec.max_batch_size, 1)
    )
    seq_buckets = parse_buckets(
        spec.options.get("seq_buckets"),
        "seq_buckets",
        default_buckets(spec.max_length, SHORT_SEQUENCE),
    )
    if compile_mode is not None:
        if compile_mode not in _COMPILE_MODES:
            raise UnsupportedSetting(f"compile must be one of {_COMPILE_MODES}: {compile_mode!r}")
        return CompiledRunner(model, names, device, batch_buckets, seq_buckets, str(compile_mode))
    return GraphRunner(model, names, device, batch_buckets, seq_buckets)


def load(spec: EngineSpec) -> TorchEngine:
    """Load the HF model folder ``spec.artifact`` onto ``spec.device``."""
    from transformers import AutoModelForSequenceClassification

    check_options("torch", spec.options, KNOWN_OPTIONS)
    if spec.precision not in _DTYPES:
        raise UnsupportedSetting(f"torch precision must be one of {sorted(_DTYPES)}")
    device = _device(spec)
    folder = Path(spec.artifact)
    _check_weights(folder)
    extra: dict[str, Any] = {}
    if "attn_implementation" in spec.options:
        extra["attn_implementation"] = str(spec.options["attn_implementation"])
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder,
            use_safetensors=True,
            local_files_only=True,
            dtype=_DTYPES[spec.precision],
            **extra,
        )
    except Exception as e:  # transformers raises OSError, ValueError, safetensors errors...
        raise ArtifactError(f"{folder}: cannot load the model: {e}") from e
    if spec.threads > 0:
        torch.set_num_threads(spec.threads)
    model.eval()
    model.to(device)
    names = ["input_ids", "attention_mask"]
    if uses_token_type_ids(model.config):
        names.append("token_type_ids")
    fast = _fast_path(spec, model, names, device)
    return TorchEngine(model, spec, device, names, int(model.config.num_labels), fast)
