"""Injected engine faults against a real server: every request answered once, then recovery.

One ``sluice serve`` process serves ``faulty`` (the tiny model through
``tests.support.fault_engine``, switched between modes by its control file) and the healthy
``tiny-sentiment``, with a 1 s watchdog limit and ``max_stuck_calls`` 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.fault_fixtures import FAULT_ENV, classify, classify_many, make_fault_repository
from tests.support.fault_engine import set_fault
from tests.support.server_process import ServerProcess, start_server

MODEL = "faulty"
HEALTHY = "tiny-sentiment"


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-control") / "fault.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, control: Path) -> Iterator[ServerProcess]:
    root = make_fault_repository(tmp_path_factory.mktemp("fault-repo"), MODEL, control=control,
                                 queue_delay_us=100_000)
    proc = start_server(root, extra_args=["--models", f"{MODEL},{HEALTHY}",
                                          "--shutdown-delay-s", "0"], env=FAULT_ENV)
    yield proc
    proc.stop()


@pytest.fixture
def fault(server: ServerProcess, control: Path) -> Iterator[Path]:
    """The control file; afterwards the fault is off and the server must have recovered."""
    yield control
    set_fault(control, "none")
    assert_serving(server)


def assert_serving(server: ServerProcess) -> None:
    r = classify(server.url, MODEL, ["all good again"])
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 1
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/{MODEL}/ready").status_code == 200


def assert_error(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"]


def test_an_engine_that_raises_fails_only_its_batch(server: ServerProcess, fault: Path) -> None:
    set_fault(fault, "raise")
    for r in classify_many(server.url, MODEL, 4):
        assert_error(r, 500, "injected fault")
    healthy = classify(server.url, HEALTHY, ["unaffected"])
    assert healthy.status_code == 200, healthy.text
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_wrong_output_length_is_a_500_naming_the_rows(server: ServerProcess, fault: Path) -> None:
    set_fault(fault, "wrong_length")
    for r in classify_many(server.url, MODEL, 3):
        assert_error(r, 500, "rows")


def test_a_slow_engine_within_the_limit_answers(server: ServerProcess, fault: Path) -> None:
    set_fault(fault, "slow", slow_s=0.3)
    assert all(r.status_code == 200 for r in classify_many(server.url, MODEL, 3))


def test_out_of_memory_halves_the_batch_and_fails_only_what_cannot_fit(
    server: ServerProcess, fault: Path
) -> None:
    set_fault(fault, "oom", oom_above_rows=1)
    responses = classify_many(server.url, MODEL, 8)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    server.wait_for_line(lambda line: "retrying in halves" in line, timeout=5)
    assert_error(classify(server.url, MODEL, ["one request", "of two texts"]), 500, "out of memory")


def test_a_hang_answers_504_then_unavailable_at_the_cap_then_recovers(
    server: ServerProcess, fault: Path
) -> None:
    set_fault(fault, "hang", hang_s=6.0)  # a busy loop: it burns a core like a real hang
    assert_error(classify(server.url, MODEL, ["first hang"]), 504, "engine_call_timeout_s")
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200  # instance replaced
    assert_error(classify(server.url, MODEL, ["second hang"]), 504, "engine_call_timeout_s")
    # two calls stuck = max_stuck_calls: UNAVAILABLE, answered at once
    assert_error(classify(server.url, MODEL, ["refused"]), 503, "max_stuck_calls 2")
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
    assert_error(httpx.get(f"{server.url}/v2/models/{MODEL}/ready"), 503, "stuck")
    assert classify(server.url, HEALTHY, ["other models serve"]).status_code == 200
    set_fault(fault, "none")
    server.wait_for_line(lambda line: f"{MODEL}/1: available again" in line, timeout=15)
