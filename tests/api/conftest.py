"""The real application in-process (``create_app`` through ``httpx.ASGITransport``), its lifespan
run by hand, and the access log's lines as parsed JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.api.access import ACCESS_LOGGER
from server.app import create_app
from server.settings import Settings

TINY_MODEL = "tiny-sentiment"
LOAD_TIMEOUT_S = 120.0


class _Lines(logging.Handler):
    """Keeps every record's message as it would be written (the bare line)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Loaded(logging.Handler):
    """Sets an event at the app's "model loading finished" line (emitted on the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "model loading finished" in record.getMessage():
            self.event.set()


@dataclass
class Served:
    client: httpx.AsyncClient
    access: _Lines = field(default_factory=_Lines)

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.access.lines]

    def record_of(self, request_id: str) -> dict[str, Any]:
        found = [r for r in self.records() if r["request_id"] == request_id]
        assert len(found) == 1, f"{len(found)} access lines for {request_id}: {self.access.lines}"
        return found[0]

    async def counts(self) -> dict[tuple[str, str, str], float]:
        """``sluice_http_requests_total`` by (model, route, status), from ``/metrics``."""
        text = (await self.client.get("/metrics")).text
        return {
            (s.labels["model"], s.labels["route"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "sluice_http_requests_total"
        }


@contextlib.asynccontextmanager
async def serve_in_process(
    repository: Path, models: tuple[str, ...] = (TINY_MODEL,), **settings: Any
) -> AsyncIterator[Served]:
    """The app serving ``models`` (``tiny-sentiment``) until the block ends, its models loaded."""
    app = create_app(Settings(model_repository=repository, models=models, engine_threads=1,
                              **settings))
    served = Served(httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://sluice"))
    access, sluice = logging.getLogger(ACCESS_LOGGER), logging.getLogger("sluice")
    loaded, level = _Loaded(), sluice.level
    access.addHandler(served.access)
    sluice.addHandler(loaded)
    sluice.setLevel(logging.INFO)
    try:
        async with app.router.lifespan_context(app), served.client:
            async with asyncio.timeout(LOAD_TIMEOUT_S):
                await loaded.event.wait()
            yield served
    finally:
        sluice.setLevel(level)
        sluice.removeHandler(loaded)
        access.removeHandler(served.access)


TIED_MODEL = "tied"
"""A text model whose every text scores the fixed ``TIED_LOGITS`` (a tie between its first two
labels), served by ``tests.support.fixed_engine`` through the engine extension point."""
TIED_LABELS = ("alpha", "beta", "gamma")
TIED_LOGITS = (1.0, 1.0, -1.0)
RANKER_MODEL = "ranker"
"""A tensor model: ``score = features @ WEIGHTS + BIAS`` (``tests.support.tensor_model``)."""
INFERENCE_MODELS = (TINY_MODEL, TIED_MODEL, RANKER_MODEL)
PLUGINS = "tests.support"


@pytest.fixture(scope="session")
def inference_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny-sentiment`` (and its torch twin), ``tied`` and ``ranker`` in one repository."""
    from tests.support.fixed_engine import fixed_model_config
    from tests.support.tensor_model import make_ranker_model
    from tests.support.tiny_model import TOKENIZER_FILES, make_tiny_repository

    root = make_tiny_repository(tmp_path_factory.mktemp("inference-repo"))
    version = root / TIED_MODEL / "1"
    version.mkdir(parents=True)
    for name in ("model.onnx", *TOKENIZER_FILES):
        shutil.copyfile(root / TINY_MODEL / "1" / name, version / name)
    (root / TIED_MODEL / "config.yaml").write_text(fixed_model_config(TIED_LOGITS, TIED_LABELS))
    make_ranker_model(root / RANKER_MODEL)
    return root
