"""Small checks on EngineSpec fields that several backends share."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from engines.errors import EngineError


class UnsupportedSetting(EngineError, ValueError):
    """A spec field or option the backend can't honour (an unknown option, fp16 on CPU...).

    An EngineError, so callers that map engine errors see it; a ValueError, because it is one.
    """


def check_options(backend: str, options: Mapping[str, Any], known: Collection[str]) -> None:
    """Reject option keys the backend doesn't know: a typo must not be silently ignored."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UnsupportedSetting(
            f"{backend}: unknown engine option(s) {unknown}; known: {sorted(known) or 'none'}"
        )


def cuda_index(device: str) -> int | None:
    """``cpu`` -> None, ``cuda`` -> 0, ``cuda:N`` -> N; anything else is UnsupportedSetting."""
    if device == "cpu":
        return None
    if device == "cuda":
        return 0
    prefix, _, index = device.partition(":")
    if prefix == "cuda" and index.isdigit():
        return int(index)
    raise UnsupportedSetting(f"device must be cpu, cuda or cuda:N, got '{device}'")


#: ONNX Runtime execution providers that run on an NVIDIA GPU.
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def providers_for_device(device: str, providers: Sequence[str]) -> tuple[str, ...]:
    """ONNX Runtime providers for ``providers`` moved to ``device``.

    A list that already runs where ``device`` says (a GPU provider for ``cuda``, none for
    ``cpu``) is kept; one that would run elsewhere becomes ``()``, the engine's default for the
    device (CUDA then CPU on ``cuda``, CPU on ``cpu``).
    """
    on_gpu = cuda_index(device) is not None
    if any(p in GPU_PROVIDERS for p in providers) == on_gpu:
        return tuple(providers)
    return ()
