"""Repository behaviour of a real server: tensor models, broken models, load/unload, shutdown."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.support.server_process import ServerProcess, start_server
from tests.support.tensor_model import expected_scores, make_ranker_model

pytestmark = pytest.mark.e2e
ADMIN_KEY = "repository-test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def mixed_repository(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed-repo")
    shutil.copytree(tiny_repository / "tiny-sentiment", root / "tiny-sentiment")
    make_ranker_model(root / "ranker")
    broken = root / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "config.yaml").write_text("task: tensor\nengine: {backend: onnxruntime}\n"
                                        "batching: {max_batch_sizes: 4}\n")
    missing = root / "missing-artifact"
    (missing / "1").mkdir(parents=True)
    (missing / "config.yaml").write_text("task: tensor\n")
    return root


@pytest.fixture(scope="module")
def server(mixed_repository: Path) -> Iterator[ServerProcess]:
    proc = start_server(mixed_repository, expect_ready=False,
                        extra_args=["--model-control-mode", "explicit"],
                        env={"SLUICE_ADMIN_KEYS": ADMIN_KEY})
    yield proc
    proc.stop()


def test_broken_models_do_not_block_the_others(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        # strict readiness (as Triton): not ready while a model that should serve is broken
        assert c.get("/v2/health/ready").status_code == 503
        assert c.get("/v2/models/tiny-sentiment/ready").status_code == 200
        assert c.get("/v2/models/ranker/ready").status_code == 200
        r = c.get("/v2/models/broken/ready")
        assert r.status_code == 503 and "max_batch_sizes" in r.json()["error"]
        index = {m["name"]: m for m in c.post("/v2/repository/index").json()}
        assert index["broken"]["state"] == "UNAVAILABLE"
        assert "config.yaml" in index["broken"]["reason"]
        assert "model.onnx" in index["missing-artifact"]["reason"]
        assert index["ranker"]["state"] == "READY"


def test_tensor_model_via_tritonclient_batches_rows(server: ServerProcess) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    meta = client.get_model_metadata("ranker")
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    features = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    for binary in (True, False):
        inp = triton.InferInput("features", list(features.shape), "FP32")
        inp.set_data_from_numpy(features, binary_data=binary)
        out = triton.InferRequestedOutput("score", binary_data=binary)
        result = client.infer("ranker", [inp], outputs=[out])
        np.testing.assert_allclose(result.as_numpy("score"), expected_scores(features), rtol=1e-5)
    bad = httpx.post(f"{server.url}/v2/models/ranker/infer", json={"inputs": [
        {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert bad.status_code == 400 and "shape" in bad.json()["error"]
    client.close()


def test_unload_then_load_again(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, headers=ADMIN) as c:
        assert c.post("/v2/repository/models/ranker/unload").status_code == 200
        r = c.post("/v2/models/ranker/infer", json={"inputs": [
            {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
        assert r.status_code == 503
        assert c.post("/v2/repository/models/ranker/load").status_code == 200
        r = c.post("/v2/models/ranker/infer", json={"inputs": [
            {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
        assert r.status_code == 200, r.text
        assert c.post("/v2/repository/models/nope/load").status_code == 404


def test_sigterm_exits_cleanly(mixed_repository: Path) -> None:
    proc = start_server(mixed_repository, extra_args=["--models", "ranker"])
    assert httpx.get(f"{proc.url}/v2/health/ready").status_code == 200
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is -15
    assert proc.stop() in (0, -15)
    assert "Application shutdown complete" in proc.log()
    assert "Traceback" not in proc.log()
