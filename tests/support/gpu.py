"""Whether GPU-only code can run here, with a reason to show when a test is skipped."""

from __future__ import annotations

import importlib.util


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA GPU."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def tensorrt_skip_reason() -> str | None:
    """Why TensorRT can't run here, or None when it can."""
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt is not installed (pip install 'sluice[tensorrt]' on a GPU machine)"
    if not cuda_available():
        return "tensorrt needs a CUDA GPU"
    return None
