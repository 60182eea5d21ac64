"""A repository with a fault-injecting model next to a healthy one, and a client helper."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.fault_engine import fault_model_config
from tests.support.tiny_model import TOKENIZER_FILES, make_tiny_repository

#: The settings a fault-test server runs with: plugins from tests.support, short limits.
FAULT_ENV = {
    "SLUICE_ENGINE_PLUGINS": "tests.support",
    "SLUICE_ENGINE_CALL_TIMEOUT_S": "1.0",
    "SLUICE_MAX_STUCK_CALLS": "2",
}


def add_fault_model(root: Path, name: str, **config: Any) -> Path:
    """``root/name``: the tiny ONNX model served by the fault engine (``fault_model_config``)."""
    source = root / "tiny-sentiment" / "1"
    version = root / name / "1"
    version.mkdir(parents=True, exist_ok=True)
    for file in ("model.onnx", *TOKENIZER_FILES):
        shutil.copyfile(source / file, version / file)
    (root / name / "config.yaml").write_text(fault_model_config(**config))
    return root / name


def make_fault_repository(root: Path, name: str, **config: Any) -> Path:
    make_tiny_repository(root)
    add_fault_model(root, name, **config)
    return root


def classify(url: str, model: str, texts: list[str], timeout: float = 30.0) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/{model}/classify", json={"inputs": texts}, timeout=timeout)


def classify_many(url: str, model: str, n: int) -> list[httpx.Response]:
    """``n`` single-text requests at once (so they share batches)."""
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: classify(url, model, [f"text {i}"]), range(n)))
