"""SLUICE_DEVICE / --device: validated once, applied to every model's engine config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engines.options import providers_for_device
from server.repository.config import EngineConfig, ModelConfig
from server.repository.loader import with_device
from server.settings import Settings

CUDA_CHAIN = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _config(**engine: object) -> ModelConfig:
    return ModelConfig(labels=("a", "b"), engine=EngineConfig.model_validate(engine))


@pytest.mark.parametrize("device", ["", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_accepted_devices(device: str) -> None:
    assert Settings(device=device).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CUDA", "cpu:0", " cuda"])
def test_other_devices_are_rejected_naming_the_forms(device: str) -> None:
    with pytest.raises(ValidationError, match="device must be cpu, cuda or cuda:N"):
        Settings(device=device)


def test_the_environment_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_DEVICE", "cuda:1")
    assert Settings().device == "cuda:1"
    monkeypatch.setenv("SLUICE_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        Settings()


def test_empty_keeps_each_config_as_it_is() -> None:
    config = _config(device="cuda:1", providers=list(CUDA_CHAIN))
    assert with_device(config, "") is config


def test_a_cpu_config_moves_to_cuda_and_takes_the_cuda_providers() -> None:
    config = _config(device="cpu", providers=["CPUExecutionProvider"])
    moved = with_device(config, "cuda:1")
    assert moved.engine.device == "cuda:1"
    assert moved.engine.providers == ()  # the ONNX engine then asks for CUDA, then CPU
    assert config.engine.device == "cpu"  # the original is untouched (frozen models)
    assert moved.labels == config.labels and moved.batching == config.batching


def test_a_cuda_config_moves_to_cpu_without_its_gpu_providers() -> None:
    moved = with_device(_config(device="cuda", providers=list(CUDA_CHAIN)), "cpu")
    assert (moved.engine.device, moved.engine.providers) == ("cpu", ())


def test_providers_that_fit_the_device_are_kept() -> None:
    moved = with_device(_config(device="cuda:0", providers=list(CUDA_CHAIN)), "cuda:2")
    assert (moved.engine.device, moved.engine.providers) == ("cuda:2", CUDA_CHAIN)
    assert providers_for_device("cpu", ["CPUExecutionProvider"]) == ("CPUExecutionProvider",)
    assert providers_for_device("cpu", []) == ()
    assert providers_for_device("cuda", ["CUDAExecutionProvider"]) == ("CUDAExecutionProvider",)
