"""The CPU images, built with docker/build-local.sh and run with podman as a pod runs them.

``runtime``: the real airline-sentiment model (a smoke build, tests/pipeline's cached one)
mounted read-only at /models, read-only root, only /tmp writable, uid 1000; it must answer as
the same model served on the host does. ``bundled``: airline-sentiment built inside the image
build (smoke profile) and served without a mount.

Slow: the first run here makes the Debian base (about a minute) and installs the dependencies
(a minute or two); later runs reuse the cached layers. Prints image sizes, build and
start-to-ready seconds (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.container.heavy import CHECK_ABSENT
from tests.support.server_process import free_port, start_server
from tests.support.tools import require

pytestmark = [pytest.mark.container, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/sluice-test"
MODEL = "airline-sentiment"
TEXTS = ["my bag never arrived and nobody answers the phone", "great crew, thank you!",
         "is there wifi on the 7am to Denver?"]
READY_DEADLINE_S = 120.0


@dataclass
class Podman:
    path: str
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        r = subprocess.run([self.path, *args], capture_output=True, text=True, env=self.env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r.stdout.strip()


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    path = require("podman", "builds and runs the container images")
    require("runc", "the container runtime this sandbox needs")
    require("debootstrap", "makes the local Debian base image")
    cache = Path(os.environ.get("SLUICE_IMAGE_CACHE", Path.home() / ".cache" / "sluice-images"))
    # the containers.conf build-local.sh writes there (runc, bounded ulimits) for every podman call
    env = {**os.environ, "SLUICE_IMAGE_CACHE": str(cache),
           "CONTAINERS_CONF": str(cache / "containers.conf")}
    return Podman(path, env)


def build(podman: Podman, target: str, **env: str) -> float:
    start = time.perf_counter()
    r = subprocess.run(["bash", str(ROOT / "docker" / "build-local.sh"), target],
                       capture_output=True, text=True, timeout=3600,
                       env={**podman.env, "IMAGE": IMAGE, **env})
    assert r.returncode == 0, f"build-local.sh {target} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    elapsed = time.perf_counter() - start
    for line in r.stderr.splitlines():
        if line.startswith("build-local:"):
            print(line)
    return elapsed


def size_mb(podman: Podman, image: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image)) / 1e6


@pytest.fixture(scope="module")
def runtime_image(podman: Podman) -> str:
    seconds = build(podman, "runtime")
    image = f"{IMAGE}:cpu"
    print(f"runtime image {image}: {size_mb(podman, image):.0f} MB, build-local.sh {seconds:.0f}s")
    return image


@pytest.fixture(scope="module")
def smoke_models() -> Path:
    from pipeline.smoke import smoke_repository

    return smoke_repository()


@dataclass
class Running:
    id: str
    url: str
    ready_s: float


def run_until_ready(podman: Podman, image: str, *args: str) -> Running:
    port = free_port()
    start = time.perf_counter()
    cid = podman("run", "-d", "--read-only", "--tmpfs", "/tmp", "--user", "1000",
                 "-p", f"127.0.0.1:{port}:8000", *args, image)
    url = f"http://127.0.0.1:{port}"
    deadline = start + READY_DEADLINE_S
    while True:  # bounded poll of the real readiness endpoint: nothing else signals from inside
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return Running(cid, url, time.perf_counter() - start)
        except httpx.TransportError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", cid, check=False)
        if state not in ("running", "created", "configured"):
            logs = podman("logs", cid, check=False)
            podman("rm", "-f", cid, check=False)
            raise AssertionError(f"container {state} before it was ready:\n{logs}")
        if time.perf_counter() > deadline:
            logs = podman("logs", cid, check=False)
            podman("rm", "-f", cid, check=False)
            raise AssertionError(f"not ready within {READY_DEADLINE_S}s:\n{logs}")
        time.sleep(0.2)


@pytest.fixture
def container(podman: Podman) -> Iterator[list[str]]:
    """Ids of containers a test starts; removed afterwards whatever happened."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        podman("rm", "-f", "-t", "5", cid, check=False)


def classify(url: str) -> list[list[dict[str, object]]]:
    r = httpx.post(f"{url}/v1/models/{MODEL}/classify", json={"inputs": TEXTS, "top_k": 3},
                   timeout=30)
    assert r.status_code == 200, r.text
    predictions: list[list[dict[str, object]]] = r.json()["predictions"]
    return predictions


def host_answers(repository: Path) -> list[list[dict[str, object]]]:
    server = start_server(repository, extra_args=["--models", MODEL])
    try:
        return classify(server.url)
    finally:
        server.stop()


def assert_same_answers(got: list[list[dict[str, object]]],
                        want: list[list[dict[str, object]]]) -> None:
    assert len(got) == len(want) == len(TEXTS)
    for g, w in zip(got, want, strict=True):
        assert [p["label"] for p in g] == [p["label"] for p in w]
        for pg, pw in zip(g, w, strict=True):
            assert abs(float(pg["score"]) - float(pw["score"])) < 1e-4  # type: ignore[arg-type]


def assert_base_install_only(podman: Podman, cid: str) -> None:
    podman("exec", cid, "python3", "-c", CHECK_ABSENT)


def test_image_config(podman: Podman, runtime_image: str) -> None:
    (inspected,) = json.loads(podman("image", "inspect", runtime_image))
    config = inspected["Config"]
    # podman keeps HEALTHCHECK only in the docker format (build-local.sh builds that), beside
    # the OCI config
    assert "/v2/health/ready" in " ".join(inspected["Healthcheck"]["Test"])
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["sluice", "serve", "--no-build"]
    assert config["Cmd"] == ["--model-repository", "/models", "--host", "0.0.0.0", "--port", "8000"]
    assert {"8000/tcp", "8002/tcp"} <= set(config["ExposedPorts"])
    assert "HF_HUB_OFFLINE=1" in config["Env"]
    assert config["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_runtime_serves_a_mounted_repository_read_only(
    podman: Podman, runtime_image: str, smoke_models: Path, container: list[str]
) -> None:
    want = host_answers(smoke_models)
    running = run_until_ready(podman, runtime_image, "-v", f"{smoke_models}:/models:ro")
    container.append(running.id)
    print(f"runtime image, {MODEL} (smoke build) mounted: ready {running.ready_s:.1f}s after "
          f"podman run")
    assert_same_answers(classify(running.url), want)
    # the image's own HEALTHCHECK, run by podman: healthy once ready
    podman("healthcheck", "run", running.id)
    assert_base_install_only(podman, running.id)
    # nothing but /tmp is writable, and the server runs as uid 1000
    assert podman("exec", running.id, "id", "-u") == "1000"
    denied = podman("exec", running.id, "sh", "-c", "touch /opt/x 2>&1 || true")
    assert "Read-only file system" in denied


def test_bundled_serves_its_own_models(podman: Podman, container: list[str]) -> None:
    seconds = build(podman, "bundled", BUILD_PROFILE="smoke", BUILD_MODELS=MODEL)
    image = f"{IMAGE}:bundled"
    print(f"bundled image {image} (smoke {MODEL}): {size_mb(podman, image):.0f} MB, "
          f"build-local.sh {seconds:.0f}s")
    running = run_until_ready(podman, image)
    container.append(running.id)
    print(f"bundled image: ready {running.ready_s:.1f}s after podman run")
    predictions = classify(running.url)
    assert all({p["label"] for p in labels} == {"negative", "neutral", "positive"}
               for labels in predictions)
    # only what the config serves was copied in: no build folder, no other variants
    config = yaml.safe_load(podman("exec", running.id, "cat", f"/models/{MODEL}/config.yaml"))
    served = [str(v) for v in config["version_policy"]["specific"]["versions"]]
    listing = podman("exec", running.id, "ls", f"/models/{MODEL}").split()
    assert sorted(listing) == sorted([*served, "MODEL_CARD.md", "config.yaml", "model_card.json"])
    assert_base_install_only(podman, running.id)
