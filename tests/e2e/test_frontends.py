"""``sluice serve --frontends 2``: the same answers as one process; a front end or the engine
process killed under load (every request answered or a clean connection error, none hung, the
server recovers); SIGTERM drains every process.

The tests share one cluster server (in any order: each fault test ends with every front end
ready again); the drain test starts its own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.support.server_process import ServerProcess, start_server

pytestmark = pytest.mark.e2e

MODEL = "tiny-sentiment"
TEXTS = ["my flight was cancelled again", "thanks for the upgrade!", "meh"]
#: Texts a front end must tokenize exactly as the engine would: past max_length (64) tokens,
#: past the character budget (64 x 16), accents, CJK, emoji, odd spaces.
HARD_TEXTS = ["delayed again " * 60, "x" * 2000 + " tail", "Zürich → 東京, naïve café ☕ 🙂",
              "  tabs\tand\nnew lines  ", "ÅNGSTRÖM ﬁ ﬀ ½"]


@pytest.fixture(scope="module")
def repository(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-sentiment, and ``patient``: the same model, whose lone requests wait 2 s for a batch."""
    root = tmp_path_factory.mktemp("frontends-repo")
    shutil.copytree(tiny_repository / MODEL, root / MODEL)
    shutil.copytree(tiny_repository / MODEL, root / "patient")
    config = root / "patient" / "config.yaml"
    config.write_text(config.read_text().replace("max_queue_delay_us: 20000",
                                                 "max_queue_delay_us: 2000000"))
    return root


def lines_after(server: ServerProcess, start: int, *texts: str, timeout: float = 30.0) -> None:
    """Block (woken by each new log line) until every one of ``texts`` appears after line
    ``start``."""
    missing = set(texts)
    cursor = start

    def seen() -> bool:
        nonlocal cursor
        for line in server.lines[cursor:]:
            missing.difference_update([t for t in missing if t in line])
        cursor = len(server.lines)
        return not missing

    with server._new_line:
        if not server._new_line.wait_for(seen, timeout):
            raise AssertionError(f"no {texts} in {timeout}s:\n{''.join(server.lines[start:])}")


def frontends_ready(server: ServerProcess, start: int = 0) -> None:
    lines_after(server, start, "front end 0: cluster ready", "front end 1: cluster ready")


def pid_of(server: ServerProcess, name: str) -> int:
    found = [m.group(1) for line in server.lines
             if (m := re.search(rf"{name} started: pid (\d+)", line))]
    return int(found[-1])


@pytest.fixture(scope="module")
def single(repository: Path) -> Iterator[ServerProcess]:
    proc = start_server(repository, extra_args=["--models", MODEL])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def cluster(repository: Path) -> Iterator[ServerProcess]:
    proc = start_server(repository, extra_args=["--frontends", "2", "--models", MODEL],
                        ready_timeout=60)
    frontends_ready(proc)
    yield proc
    if proc.process.poll() is None:
        proc.process.kill()
        proc.process.wait(10)


def answers(url: str) -> list[object]:
    with httpx.Client(base_url=url, timeout=10) as client:
        got: list[object] = []
        bodies: list[dict[str, object]] = [{"inputs": TEXTS, "top_k": 2},
                                           {"inputs": TEXTS, "top_k": 9}, {"inputs": []}]
        for body in bodies:
            r = client.post(f"/v1/models/{MODEL}/classify", json=body)
            got.append((r.status_code, r.json()))
        r = client.post("/v1/models/nope/classify", json={"inputs": ["x"]})
        got.append((r.status_code, r.json()))
        for body in [{"inputs": HARD_TEXTS, "top_k": 3}, *({"inputs": [t]} for t in HARD_TEXTS)]:
            r = client.post(f"/v1/models/{MODEL}/classify", json=body)
            assert r.status_code == 200, r.text
            got.append(r.json())
        got.append(client.get(f"/v2/models/{MODEL}").json())
        got.append(client.get("/v2/health/ready").status_code)
    triton_client = triton.InferenceServerClient(url.removeprefix("http://"))
    text = triton.InferInput("text", [len(TEXTS + HARD_TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array(TEXTS + HARD_TEXTS, dtype=object), binary_data=True)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True),
               triton.InferRequestedOutput("label", binary_data=False)]
    result = triton_client.infer(MODEL, [text], outputs=outputs)
    got.append(np.round(result.as_numpy("probabilities"), 5).tolist())
    got.append(result.as_numpy("label").tolist())
    return got


def test_two_frontends_answer_as_one_process(single: ServerProcess, cluster: ServerProcess) -> None:
    expected = answers(single.url)
    assert expected[0][0] == 200 and expected[1][0] == 400 and expected[3][0] == 404  # type: ignore[index]
    assert answers(cluster.url) == expected
    # the front ends tokenized (the engine process only padded)
    lines_after(cluster, 0, f"loaded the tokenizer of {MODEL} version 1")
    metrics = httpx.get(f"{cluster.url}/metrics").text
    assert "nv_inference_request_success" in metrics  # the engine's families
    assert "sluice_http_requests_total" in metrics  # the front ends'


class Load:
    """Clients sending classify requests in a loop until stopped; what each request got."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(clients)
        self._runs = [self._pool.submit(self._client) for _ in range(clients)]

    def _client(self) -> None:
        client = httpx.Client(base_url=self.url, timeout=10)
        while not self._stop.is_set():
            try:
                r = client.post(f"/v1/models/{MODEL}/classify", json={"inputs": TEXTS})
                outcome = str(r.status_code)
            except httpx.TimeoutException:
                outcome = "hung"
            except httpx.TransportError as e:
                outcome = "connection error"
                with self._lock:
                    self.errors[type(e).__name__] += 1
                client.close()
                client = httpx.Client(base_url=self.url, timeout=10)
            with self._lock:
                self.outcomes[outcome] += 1
        client.close()

    def stop(self) -> Counter[str]:
        self._stop.set()
        for run in self._runs:
            run.result(30)
        self._pool.shutdown()
        return self.outcomes


def test_a_killed_frontend_fails_only_its_connections_and_is_restarted(
    cluster: ServerProcess,
) -> None:
    load = Load(cluster.url)
    lines_after(cluster, len(cluster.lines), '"status":200')  # traffic flows
    mark = len(cluster.lines)
    os.kill(pid_of(cluster, "front end 0"), signal.SIGKILL)
    lines_after(cluster, mark, "front end 0 (pid", "front end 0 started")
    frontends_ready(cluster, mark)
    after = len(cluster.lines)
    lines_after(cluster, after, '"status":200')  # answering again
    outcomes = load.stop()
    print("front end killed:", dict(outcomes), dict(load.errors))
    assert set(outcomes) <= {"200", "connection error"}, outcomes
    assert outcomes["200"] > 0


def test_a_killed_engine_fails_pending_requests_503_and_is_restarted(
    cluster: ServerProcess,
) -> None:
    load = Load(cluster.url)
    lines_after(cluster, len(cluster.lines), '"status":200')
    mark = len(cluster.lines)
    os.kill(pid_of(cluster, "engine process"), signal.SIGKILL)
    lines_after(cluster, mark, "engine process lost")
    ready = httpx.get(f"{cluster.url}/v2/health/ready")
    frontends_ready(cluster, mark)
    outcomes = load.stop()
    print("engine killed:", dict(outcomes))
    assert set(outcomes) <= {"200", "503"}, outcomes
    assert outcomes["503"] > 0
    assert ready.status_code == 503 or "cluster not ready" in "".join(cluster.lines[mark:])
    with httpx.Client(base_url=cluster.url, timeout=10) as client:
        assert client.post(f"/v1/models/{MODEL}/classify",
                           json={"inputs": TEXTS}).status_code == 200


def test_sigterm_drains_every_process(repository: Path) -> None:
    """Requests accepted in the lame duck (1 s) that wait 2 s for their batch are answered
    through the drain; the engine process drains last."""
    cluster = start_server(repository, extra_args=["--frontends", "2", "--models", "patient",
                                                   "--shutdown-delay-s", "1"], ready_timeout=60)
    frontends_ready(cluster)
    try:
        _drain(cluster)
    finally:
        if cluster.process.poll() is None:
            cluster.process.kill()
            cluster.process.wait(10)


def _drain(cluster: ServerProcess) -> None:
    mark = len(cluster.lines)
    cluster.process.send_signal(signal.SIGTERM)
    lines_after(cluster, mark, "sluice[fe0]: lame duck", "sluice[fe1]: lame duck")
    ready = httpx.get(f"{cluster.url}/v2/health/ready")
    with ThreadPoolExecutor(3) as pool:
        running = [pool.submit(httpx.post, f"{cluster.url}/v1/models/patient/classify",
                               json={"inputs": [t]}, timeout=20) for t in TEXTS]
        statuses = [f.result(20).status_code for f in running]
    code = cluster.process.wait(30)
    assert code == 0, cluster.log()
    assert ready.status_code == 503
    assert statuses == [200, 200, 200]
    log = "".join(cluster.lines[mark:])
    assert log.count("draining: listener closed") == 2
    assert log.index("front end 0 exited: 0") < log.index("engine process draining")
    assert "engine process exited: 0" in log
