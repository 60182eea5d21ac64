"""A real ``sluice serve`` through its shutdown: lame duck on SIGTERM, drain, exit codes."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server_process import ServerProcess, free_port, start_server

pytestmark = pytest.mark.e2e

LAME_DUCK_LINE = "lame duck: readiness answers 503"
DRAIN_LINE = "draining: listener closed"


@pytest.fixture(scope="module")
def repository(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-sentiment, and ``patient``: the same model, whose lone requests wait 10 s for a batch."""
    root = tmp_path_factory.mktemp("shutdown-repo")
    shutil.copytree(tiny_repository / "tiny-sentiment", root / "tiny-sentiment")
    shutil.copytree(tiny_repository / "tiny-sentiment", root / "patient")
    config = root / "patient" / "config.yaml"
    config.write_text(config.read_text().replace("max_queue_delay_us: 20000",
                                                 "max_queue_delay_us: 10000000"))
    return root


@pytest.fixture
def serve(repository: Path) -> Iterator[list[ServerProcess]]:
    """The servers a test starts (with ``start``); any still running at the end is killed."""
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait(10)


def start(started: list[ServerProcess], repository: Path, *args: str) -> ServerProcess:
    proc = start_server(repository, extra_args=list(args))
    started.append(proc)
    return proc


def wait_for_line(server: ServerProcess, text: str, timeout: float = 20.0) -> float:
    """Block until the server logs a line containing ``text`` (woken by each new line, no
    polling); returns when it was seen."""
    server.wait_for_line(lambda line: text in line, timeout)
    return time.monotonic()


def pending(metrics_text: str, model: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "nv_inference_pending_request_count" and s.labels.get("model") == model:
                return float(s.value)
    return 0.0


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_lame_duck_then_drain(serve: list[ServerProcess], repository: Path) -> None:
    delay = 3.0
    metrics_port = free_port()
    server = start(serve, repository, "--shutdown-delay-s", str(delay),
                   "--metrics-port", str(metrics_port))
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    kept = httpx.Client(base_url=server.url, timeout=30)
    assert kept.get("/v2/health/live").status_code == 200  # a kept-alive connection, busy
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    idle.request("GET", "/v2/health/live")
    assert idle.getresponse().read() == b'{"live":true}'  # a kept-alive connection, left idle
    assert idle.sock is not None

    # two requests wait in the patient model's queue for a batch that will not fill
    queued: list[httpx.Response] = []

    def post_patient() -> None:
        queued.append(httpx.post(f"{server.url}/v1/models/patient/classify",
                                 json={"inputs": ["still waiting"]}, timeout=30))

    waiters = [threading.Thread(target=post_patient) for _ in range(2)]
    for t in waiters:
        t.start()
    deadline = time.monotonic() + 10
    while pending(httpx.get(metrics_url).text, "patient") < 2:
        assert time.monotonic() < deadline, "requests never queued"
    queued_at = time.monotonic()

    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    ready = httpx.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 503, ready.text
    wait_for_line(server, LAME_DUCK_LINE)

    # the lame duck: not ready, yet every request served, on a listener still open
    with httpx.Client(base_url=server.url, timeout=30) as fresh:
        assert fresh.get("/v2/health/ready").status_code == 503
        assert fresh.get("/v2/health/live").status_code == 200
        r = fresh.post("/v1/models/tiny-sentiment/classify", json={"inputs": ["still there?"]})
        assert r.status_code == 200, r.text
        assert r.headers["connection"] == "close"
    r = kept.post("/v1/models/tiny-sentiment/classify", json={"inputs": ["and me?"]})
    assert r.status_code == 200 and r.headers["connection"] == "close"
    assert pending(httpx.get(metrics_url).text, "patient") == 2  # metrics port still answers
    idle.sock.settimeout(delay + 5)
    assert idle.sock.recv(1) == b""  # the server closed the idle connection...
    assert time.monotonic() - signalled < delay  # ...during the lame duck
    assert not any(DRAIN_LINE in line for line in server.lines)

    drained = wait_for_line(server, DRAIN_LINE)
    assert drained - signalled >= delay
    for t in waiters:
        t.join(15)
    assert [q.status_code for q in queued] == [200, 200]
    # the drain flushed them: a batch that never fills would have held them for 10 s
    assert time.monotonic() - queued_at < 8
    assert server.process.wait(15) == 0, server.log()
    assert refused(server.port) and refused(metrics_port)
    kept.close()
    idle.close()


def test_sigint_skips_the_lame_duck(serve: list[ServerProcess], repository: Path) -> None:
    server = start(serve, repository, "--shutdown-delay-s", "60")
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(20) == 0, server.log()
    assert DRAIN_LINE in server.log() and LAME_DUCK_LINE not in server.log()


def test_second_signal_exits_at_once(serve: list[ServerProcess], repository: Path) -> None:
    server = start(serve, repository, "--shutdown-delay-s", "60")
    server.process.send_signal(signal.SIGTERM)
    wait_for_line(server, LAME_DUCK_LINE)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 128 + signal.SIGTERM
    assert "second signal" in server.log() and DRAIN_LINE not in server.log()


def test_metrics_port_serves_only_metrics(serve: list[ServerProcess], repository: Path) -> None:
    metrics_port = free_port()
    server = start(serve, repository, "--metrics-port", str(metrics_port))
    other = f"http://127.0.0.1:{metrics_port}"
    r = httpx.get(f"{other}/metrics")
    assert r.status_code == 200 and "nv_inference_request_success" in r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{server.url}/metrics").status_code == 200  # still on the main port
    for path in ("/v2/health/ready", "/v2", "/docs"):
        r = httpx.get(f"{other}{path}")
        assert r.status_code == 404 and "only /metrics" in r.json()["error"]
    r = httpx.post(f"{other}/v1/models/tiny-sentiment/classify", json={"inputs": ["x"]})
    assert r.status_code == 404
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(20) == 0, server.log()
    assert refused(metrics_port)


def test_metrics_port_taken_or_same_as_http_port(repository: Path) -> None:
    def serve_with(*args: str) -> ServerProcess | str:
        try:
            return start_server(repository, extra_args=list(args), ready_timeout=60)
        except RuntimeError as e:  # exited before it was ready
            return str(e)

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = serve_with("--metrics-port", str(port))
        assert isinstance(out, str) and f"metrics port {port}" in out and "(2)" in out
    out = serve_with("--metrics-port", "8000", "--port", "8000")
    assert isinstance(out, str) and "metrics_port" in out and "(2)" in out
