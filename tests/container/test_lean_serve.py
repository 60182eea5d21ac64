"""``sluice serve --no-build`` of an ONNX repository never imports torch, transformers, onnx or
the build pipeline, even where they are installed (here they are): the base install and the CPU
image, which lack them, depend on it.

The real server process logs every import it makes (``PYTHONPROFILEIMPORTTIME``), from start to
a served request and shutdown, engine threads included.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.server_process import start_server

pytestmark = pytest.mark.e2e

#: Top-level packages the base install does not have.
NOT_IN_THE_BASE_INSTALL = {"torch", "transformers", "onnx", "onnxscript", "safetensors", "pipeline"}


def _imported(log_lines: list[str]) -> set[str]:
    # "import time:  self [us] | cumulative | imported package" rows; the last column is a name
    rows = [line.rsplit("|", 1)[-1].strip() for line in log_lines if line.startswith("import time:")]
    return {name.split(".")[0] for name in rows}


def test_serving_onnx_imports_none_of_the_heavy_libraries(tiny_repository: Path) -> None:
    server = start_server(tiny_repository, extra_args=["--models", "tiny-sentiment"],
                          env={"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        r = httpx.post(f"{server.url}/v1/models/tiny-sentiment/classify",
                       json={"inputs": ["lost my bag"]})
        assert r.status_code == 200, r.text
    finally:
        server.stop()
    imported = _imported(server.lines)
    assert {"onnxruntime", "tokenizers", "uvicorn", "server", "engines"} <= imported  # it logged
    assert imported & NOT_IN_THE_BASE_INSTALL == set()
