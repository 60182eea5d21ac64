"""A real server with --device: every model's engine runs where the flag says."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import onnxruntime as ort
import pytest

from tests.support.server_process import start_server

pytestmark = pytest.mark.e2e


def _cuda_config(tiny_repository: Path, root: Path) -> Path:
    """tiny-sentiment with a config that asks for CUDA."""
    shutil.copytree(tiny_repository / "tiny-sentiment", root / "tiny-sentiment")
    config = root / "tiny-sentiment" / "config.yaml"
    text = config.read_text().replace(
        "  backend: onnxruntime\n",
        "  backend: onnxruntime\n  device: cuda\n"
        "  providers: [CUDAExecutionProvider, CPUExecutionProvider]\n",
    )
    assert "device: cuda" in text
    config.write_text(text)
    return root


def test_device_cpu_serves_a_cuda_config_on_cpu(tiny_repository: Path, tmp_path: Path) -> None:
    repo = _cuda_config(tiny_repository, tmp_path)
    server = start_server(repo, extra_args=["--device", "cpu"])
    try:
        with httpx.Client(base_url=server.url) as c:
            config = c.get("/v2/models/tiny-sentiment/config").json()
            assert config["engine"]["device"] == "cpu"
            assert config["engine"]["providers"] == []
            r = c.post("/v1/models/tiny-sentiment/classify", json={"inputs": ["lost bag"]})
            assert r.status_code == 200, r.text
    finally:
        server.stop()


def test_device_cuda_moves_a_cpu_model_to_cuda(tiny_repository: Path) -> None:
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    server = start_server(tiny_repository, extra_args=["--models", "tiny-sentiment"],
                          env={"SLUICE_DEVICE": "cuda"}, expect_ready=has_cuda)
    try:
        with httpx.Client(base_url=server.url) as c:
            ready = c.get("/v2/models/tiny-sentiment/ready")
            if has_cuda:
                assert ready.status_code == 200
                config = c.get("/v2/models/tiny-sentiment/config").json()
                assert config["engine"]["device"] == "cuda"
            else:  # this ONNX Runtime is the CPU build: the model says why it is not served
                assert ready.status_code == 503
                assert "CUDAExecutionProvider" in ready.json()["error"]
    finally:
        server.stop()


def test_an_unknown_device_stops_the_server_with_a_clear_message(tiny_repository: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--model-repository",
                        str(tiny_repository), "--no-build", "--device", "gpu"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "device must be cpu, cuda or cuda:N, got 'gpu'" in r.stderr
    assert "Traceback" not in r.stderr
