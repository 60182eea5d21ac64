"""A client that goes away while its request is queued: the request is dropped before compute."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server_process import ServerProcess, start_server

pytestmark = pytest.mark.e2e


def value(server: ServerProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@pytest.fixture(scope="module")
def server(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("slow-repo")
    model = root / "patient"
    shutil.copytree(tiny_repository / "tiny-sentiment", model)
    # a batch waits up to 10 s to fill, so a lone request stays queued until 8 texts arrive
    config = (model / "config.yaml").read_text().replace(
        "max_queue_delay_us: 20000", "max_queue_delay_us: 10000000")
    (model / "config.yaml").write_text(config)
    proc = start_server(root)
    yield proc
    proc.stop()


def test_disconnected_request_is_dropped_before_compute(server: ServerProcess) -> None:
    labels = {"model": "patient", "version": "1"}
    body = orjson.dumps({"inputs": ["I will hang up"]})
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.sendall(b"POST /v1/models/patient/classify HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    deadline = time.monotonic() + 8
    while value(server, "nv_inference_pending_request_count", **labels) < 1:
        assert time.monotonic() < deadline, "request never queued"
    raw.close()
    # the access log's line for the request that went away: 499 (nginx's "client closed request")
    server.wait_for_line(lambda line: '"status": 499' in line or '"status":499' in line, timeout=8)
    # eight texts fill a batch at once; the dropped request must not be part of it
    r = httpx.post(f"{server.url}/v1/models/patient/classify", json={"inputs": ["x"] * 8},
                   timeout=30)
    assert r.status_code == 200
    assert value(server, "nv_inference_count_total", **labels) == 8
    assert value(server, "nv_inference_exec_count_total", **labels) == 1
    assert value(server, "nv_inference_pending_request_count", **labels) == 0
    assert value(server, "nv_inference_request_failure_total", reason="CANCELED", **labels) == 1
