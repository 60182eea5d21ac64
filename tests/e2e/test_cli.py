"""The sluice command line: models listing, and serve's message when models are not built."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_models_lists_and_validates(tiny_repository: Path, tmp_path: Path) -> None:
    ok = sluice("models", str(tiny_repository))
    assert ok.returncode == 0, ok.stderr
    assert "tiny-sentiment " in ok.stdout and "tiny-sentiment-torch" in ok.stdout
    shutil.copytree(tiny_repository / "tiny-sentiment", tmp_path / "m")
    (tmp_path / "m" / "config.yaml").write_text("task: text-classification\nlabels: [a]\n"
                                                "engine: {backend: onnx}\n")
    bad = sluice("models", str(tmp_path))
    assert bad.returncode == 1
    assert "engine.backend" in bad.stdout and "config.yaml" in bad.stdout


@pytest.mark.skipif(not (ROOT / "model_repository" / "airline-sentiment" / "config.yaml").exists(),
                    reason="default model configs not in the repository yet")
def test_serve_without_built_models_says_how_to_build(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "model_repository" / "airline-sentiment", tmp_path / "airline-sentiment",
                    ignore=shutil.ignore_patterns("[0-9]*", "hf-*", ".build*"))
    r = sluice("serve", "--model-repository", str(tmp_path), "--no-build")
    assert r.returncode == 2
    assert "sluice build airline-sentiment" in r.stderr
    assert "Traceback" not in r.stderr


def test_build_and_bench_are_the_toolings_own_command_lines(tmp_path: Path) -> None:
    """``sluice build`` / ``bench`` reach the pipeline and the load tests by name (server/tools.py)."""
    build = sluice("build", "--help")
    assert build.returncode == 0, build.stderr
    assert "--profile" in build.stdout and "default models" in build.stdout
    unknown = sluice("build", "nope", "--repository", str(tmp_path))
    assert unknown.returncode == 1
    assert "unknown model(s) nope; the default models are airline-sentiment" in unknown.stderr
    bench = sluice("bench", "--help")
    assert bench.returncode == 0, bench.stderr
    assert "--model-repository" in bench.stdout
