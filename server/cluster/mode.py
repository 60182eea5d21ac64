"""``--frontends auto``: how many front-end processes a host gets."""

from __future__ import annotations

from pathlib import Path

from server.cpus import available_cpus

#: Where a host with an NVIDIA GPU has its control device.
NVIDIA_CONTROL = Path("/dev/nvidiactl")
MAX_FRONTENDS = 64


def auto_frontends(cores: int, device: str, gpu_present: bool) -> int:
    """0 (one process) when ``cores`` <= 2 or the models run on the CPU (the front ends would
    take the engine's cores); else cores - 1 (one core left for the engine process's loop)."""
    on_gpu = device.startswith("cuda") or (device == "" and gpu_present)
    if cores <= 2 or not on_gpu or device == "cpu":
        return 0
    return min(cores - 1, MAX_FRONTENDS)


def resolve(frontends: int | str, device: str) -> int:
    if frontends != "auto":
        return int(frontends)
    return auto_frontends(available_cpus(), device, NVIDIA_CONTROL.exists())
