"""Priorities, deadline-aware admission and the compute timeout, against a real server process.

The models burn real CPU in ONNX Runtime for as long as a request asks (``tests/support/
burn_model.py``), one request a batch, so a flood of requests really queues behind the engine.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.burn_model import infer_body, make_burn_model
from tests.support.server_process import ServerProcess, start_server

pytestmark = pytest.mark.e2e

PRIORITY_MODEL = "burn-priority"
TIMEOUT_MODEL = "burn-timeout"
TEXT_MODEL = "tiny-priority"
FLOOD = 32
QUEUED = FLOOD // 2  # queued at once before the test goes on
FLOOD_ITERATIONS = 30  # about 15 ms of compute per request on this machine's cores
SLOW_ITERATIONS = 10_000  # 2 to 5 s of one core: well past the 0.5 s deadline
POLL_LIMIT_S = 60.0


@pytest.fixture(scope="module")
def server(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("overload-repo")
    make_burn_model(root / PRIORITY_MODEL, "{max_batch_size: 1, max_queue_delay_us: 0, "
                    "priority_levels: 2, default_priority_level: 2}")
    make_burn_model(root / TIMEOUT_MODEL)
    shutil.copytree(tiny_repository / "tiny-sentiment", root / TEXT_MODEL)
    config = root / TEXT_MODEL / "config.yaml"
    config.write_text(config.read_text() + "  priority_levels: 3\n  default_priority_level: 2\n")
    proc = start_server(root)
    yield proc
    proc.stop()


def metric(server: ServerProcess, name: str, model: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text):
        for s in family.samples:
            if s.name == name and s.labels.get("model") == model:
                return float(s.value)
    return 0.0


async def pending(client: httpx.AsyncClient, model: str) -> int:
    stats = (await client.get(f"/v2/models/{model}/stats")).json()
    return int(stats["model_stats"][0]["pending_requests"])


async def wait_until_queued(client: httpx.AsyncClient, model: str, count: int) -> None:
    """A bounded poll of the model's queue (no event crosses the process boundary)."""
    deadline = time.monotonic() + POLL_LIMIT_S
    while await pending(client, model) < count:
        assert time.monotonic() < deadline, f"{count} requests never queued on {model}"


class Flood:
    """``FLOOD`` low-priority requests in flight; counts the ones answered so far."""

    def __init__(self, client: httpx.AsyncClient, priority: int) -> None:
        self.answered = 0
        self._client = client
        self._tasks = [asyncio.create_task(self._one(priority)) for _ in range(FLOOD)]

    async def _one(self, priority: int) -> None:
        r = await self._client.post(f"/v2/models/{PRIORITY_MODEL}/infer",
                                    json=infer_body(FLOOD_ITERATIONS, priority=priority))
        assert r.status_code == 200, r.text
        self.answered += 1

    async def done(self) -> None:
        await asyncio.gather(*self._tasks)

    async def __aenter__(self) -> Flood:
        return self

    async def __aexit__(self, *failure: object) -> None:
        """Wait for the whole flood; after a failure, drop what is left of it."""
        if failure[0] is None:
            await self.done()
        for task in self._tasks:
            task.cancel()


def client_for(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=POLL_LIMIT_S,
                             limits=httpx.Limits(max_connections=FLOOD + 8))


async def test_a_high_priority_request_overtakes_a_low_priority_flood(server: ServerProcess) -> None:
    async with client_for(server) as client:
        async with Flood(client, priority=2) as flood:
            await wait_until_queued(client, PRIORITY_MODEL, QUEUED)
            answered_before = flood.answered
            high = await client.post(f"/v2/models/{PRIORITY_MODEL}/infer",
                                     json=infer_body(FLOOD_ITERATIONS, priority=1))
            unanswered = FLOOD - flood.answered
            assert high.status_code == 200, high.text
            assert high.json()["outputs"][0]["data"] == [FLOOD_ITERATIONS]
            # ahead of it ran only what was already out of the queue (one computing, one prepared)
            # and answers still on their way to the client
            assert flood.answered - answered_before <= 3
            assert unanswered >= QUEUED - 3
            # the same request at the flood's level (0: the default, 2) waits behind all of it
            same = await client.post(f"/v2/models/{PRIORITY_MODEL}/infer",
                                     json=infer_body(FLOOD_ITERATIONS, priority=0))
            assert same.status_code == 200
            assert flood.answered >= FLOOD - 2


async def test_a_deadline_the_queue_cannot_meet_is_refused_at_once_with_retry_after(
    server: ServerProcess,
) -> None:
    async with client_for(server) as client:
        for _ in range(5):  # serving teaches the latency model what these batches cost
            r = await client.post(f"/v2/models/{PRIORITY_MODEL}/infer", json=infer_body(FLOOD_ITERATIONS))
            assert r.status_code == 200
        async with Flood(client, priority=2):
            await wait_until_queued(client, PRIORITY_MODEL, QUEUED)
            started = time.monotonic()
            refused = await client.post(f"/v2/models/{PRIORITY_MODEL}/infer",
                                        json=infer_body(FLOOD_ITERATIONS, priority=2, timeout=100_000))
            refused_after_s = time.monotonic() - started
            still_queued = await pending(client, PRIORITY_MODEL)
            assert refused.status_code == 429, refused.text
            assert "cannot be met" in refused.json()["error"]
            assert int(refused.headers["Retry-After"]) >= 1
            assert still_queued >= 4  # refused while the flood was still waiting, not after it
            # the queue at level 2 is not ahead of priority 1: admitted and answered in time
            high = await client.post(f"/v2/models/{PRIORITY_MODEL}/infer",
                                     json=infer_body(FLOOD_ITERATIONS, priority=1, timeout=5_000_000))
            assert high.status_code == 200, high.text
    print(f"\n429 after {refused_after_s * 1e3:.1f} ms, Retry-After {refused.headers['Retry-After']} s")


def test_the_deadline_holds_while_the_batch_computes(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=POLL_LIMIT_S) as client:
        started = time.monotonic()
        late = client.post(f"/v2/models/{TIMEOUT_MODEL}/infer",
                           json=infer_body(SLOW_ITERATIONS, timeout=500_000))
        answered_after_s = time.monotonic() - started
        executed_then = metric(server, "nv_inference_exec_count_total", TIMEOUT_MODEL)
        assert late.status_code == 504, late.text
        assert "while its batch was computing" in late.json()["error"]
        assert executed_then == 0  # answered while the engine was still computing its batch
        deadline = time.monotonic() + POLL_LIMIT_S
        while metric(server, "nv_inference_exec_count_total", TIMEOUT_MODEL) < 1:
            assert time.monotonic() < deadline, "the abandoned batch never finished"
        computed_after_s = time.monotonic() - started
        after = client.post(f"/v2/models/{TIMEOUT_MODEL}/infer", json=infer_body(1))
        assert after.status_code == 200 and after.json()["outputs"][0]["data"] == [1]
    assert metric(server, "nv_inference_request_success_total", TIMEOUT_MODEL) == 1
    assert "InvalidStateError" not in server.log() and "Traceback" not in server.log()
    print(f"\n504 after {answered_after_s:.3f} s (timeout 0.5 s); its batch computed for "
          f"{computed_after_s:.3f} s")


def test_priority_outside_the_levels_is_a_400_naming_the_field_and_the_limit(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=POLL_LIMIT_S) as client:
        r = client.post(f"/v2/models/{PRIORITY_MODEL}/infer", json=infer_body(1, priority=3))
        assert r.status_code == 400
        assert r.json()["error"].startswith("parameters.priority: must be an integer within 0..2")
        r = client.post(f"/v2/models/{TIMEOUT_MODEL}/infer", json=infer_body(1, priority=1))
        assert r.status_code == 400 and "priorities are off" in r.json()["error"]
        r = client.post(f"/v1/models/{TEXT_MODEL}/classify", json={"inputs": ["hi"], "priority": 4})
        assert r.status_code == 400
        assert r.json()["error"].startswith("priority: must be an integer within 0..3")
        r = client.post(f"/v1/models/{TEXT_MODEL}/classify", json={"inputs": ["hi"], "priority": "1"})
        assert r.status_code == 400 and r.json()["error"].startswith("priority:")
        for priority in (0, 1, 3):
            r = client.post(f"/v1/models/{TEXT_MODEL}/classify",
                            json={"inputs": ["hi"], "priority": priority})
            assert r.status_code == 200, r.text
