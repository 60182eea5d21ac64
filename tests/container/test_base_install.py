"""``pip install sluice`` with no extras, in a fresh virtual environment: it serves ONNX models on
CPU without torch, transformers or onnx, and says how to get them where they are needed.

Slow (about a minute: pip fetches the base dependencies, from its cache when it has them).
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import httpx
import pytest

from tests.container.heavy import CHECK_ABSENT
from tests.support.server_process import start_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "server", "engines", "pipeline", "loadtests")


def run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh venv (no system site-packages) with the package installed from a copy of this
    tree; returns (the venv's python, pip's output)."""
    root = tmp_path_factory.mktemp("base-install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    installed = run(python, "-m", "pip", "install", src, cwd=root)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python, installed.stdout + installed.stderr


def test_installs_without_packaging_warnings(base_env: tuple[Path, str]) -> None:
    _, output = base_env
    assert "Successfully installed" in output
    assert "BuildBackendWarning" not in output and "is deprecated" not in output, output


def test_the_heavy_libraries_are_not_installed(base_env: tuple[Path, str], tmp_path: Path) -> None:
    python, _ = base_env
    r = run(python, "-c", CHECK_ABSENT, cwd=tmp_path)
    assert r.returncode == 0, f"installed in the base install: {r.stdout}{r.stderr}"
    r = run(python, "-c", "import onnxruntime, tokenizers, server.app, engines.onnx_engine",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_serves_onnx_and_names_the_extra_for_torch(base_env: tuple[Path, str],
                                                  tiny_repository: Path, tmp_path: Path) -> None:
    python, _ = base_env
    server = start_server(tiny_repository, python=str(python), cwd=tmp_path, expect_ready=False)
    try:
        with httpx.Client(base_url=server.url) as c:
            r = c.post("/v1/models/tiny-sentiment/classify", json={"inputs": ["lost my bag"]})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0][0]["label"] in ("negative", "neutral", "positive")
            # where torch is installed (the dev environment) this model serves: here it can't
            torch_model = c.get("/v2/models/tiny-sentiment-torch/ready")
            assert torch_model.status_code == 503
            assert "needs torch" in torch_model.json()["error"]
            assert "sluice[torch]" in torch_model.json()["error"]
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def test_a_build_says_which_extra_it_needs(base_env: tuple[Path, str], tmp_path: Path) -> None:
    python, _ = base_env
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "model_repository" / "airline-sentiment", repo / "airline-sentiment",
                    ignore=shutil.ignore_patterns("[0-9]*", "build"))
    sluice = python.parent / "sluice"
    serve = run(sluice, "serve", "--model-repository", repo, cwd=tmp_path, timeout=120)
    assert serve.returncode == 2
    assert "not built yet: airline-sentiment" in serve.stderr
    assert "sluice[build]" in serve.stderr and "torch" in serve.stderr
    build = run(sluice, "build", "airline-sentiment", "--repository", repo, cwd=tmp_path,
                timeout=120)
    assert build.returncode == 1
    assert "sluice[build]" in build.stderr
    assert "Traceback" not in serve.stderr + build.stderr
