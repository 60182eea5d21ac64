"""Fixtures of the deployment tests: the rendered overlays, and one live Sluice to scrape."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.settings import Settings
from tests.deploy.manifests import OVERLAYS, Obj, render
from tests.support.server_process import ServerProcess, free_port, start_server
from tests.support.tools import require

#: The scrape path the ServiceMonitor, compose's Prometheus and the KServe runtime use.
METRICS_PATH = "/metrics"
LIVE_MODEL = "tiny-sentiment"


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    """Each overlay as ``kubectl kustomize`` renders it."""
    kubectl = require("kubectl", "renders the kustomize overlays offline")
    return {overlay: render(kubectl, overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def get_routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The paths the real application answers GET on, from its OpenAPI schema."""
    app = create_app(Settings(model_repository=tmp_path_factory.mktemp("empty-repository")))
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    return {path for path, methods in paths.items() if "get" in methods}


@dataclass
class LiveSluice:
    server: ServerProcess
    metrics_url: str
    metrics_port: int

    def send_requests(self, count: int) -> None:
        """``count`` classify calls that succeed, plus one for an unknown model (a 404)."""
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            for i in range(count):
                texts = [f"request {i}: the flight was late", "thank you, great crew"]
                answer = client.post(f"/v1/models/{LIVE_MODEL}/classify", json={"inputs": texts})
                assert answer.status_code == 200, answer.text
            missing = client.post("/v1/models/no-such-model/classify", json={"inputs": ["x"]})
            assert missing.status_code == 404, missing.text

    def sample_names(self) -> set[str]:
        """Every sample name /metrics exports (a histogram's _bucket, _sum, _count, ...)."""
        text = httpx.get(self.metrics_url, timeout=10).raise_for_status().text
        return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def metrics_on_own_port() -> bool:
    """Whether this server has SLUICE_METRICS_PORT (a separate /metrics port, like Triton's
    8002). Until the branch adding it merges, /metrics is on the API port."""
    return "metrics_port" in Settings.model_fields


@pytest.fixture(scope="session")
def live_sluice(tiny_repository: Path) -> Iterator[LiveSluice]:
    """A real ``sluice serve`` on the tiny repository, after a few requests."""
    metrics_port = free_port()
    server = start_server(tiny_repository, extra_args=["--models", LIVE_MODEL],
                          env={"SLUICE_METRICS_PORT": str(metrics_port)})
    try:
        if metrics_on_own_port():
            url = f"http://127.0.0.1:{metrics_port}{METRICS_PATH}"
        else:
            url, metrics_port = server.url + METRICS_PATH, server.port
        live = LiveSluice(server, url, metrics_port)
        live.send_requests(3)
        yield live
    finally:
        server.stop()
