"""The load generator against a real naive server process on the tiny model."""

from __future__ import annotations

from loadtests.corpus import airline_tweets
from loadtests.loadgen import closed_loop, open_loop
from loadtests.probes import ServerProbe
from loadtests.workload import Workload
from tests.loadtests.conftest import TINY_MODEL


async def test_closed_loop_counts_texts_and_reads_server_stats(naive_url: str) -> None:
    probe = ServerProbe("naive", naive_url, TINY_MODEL, pid=None)
    workload = Workload(TINY_MODEL, "batch", airline_tweets())
    run = await closed_loop(naive_url, workload, concurrency=2, duration_s=1.0, warmup_s=0.2,
                            on_start=probe.begin, on_end=probe.end)
    assert run.requests > 0 and not run.errors
    assert 16 * run.requests <= run.texts <= 64 * run.requests
    figures = probe.figures()
    assert figures.mean_batch_size is not None and 16 <= figures.mean_batch_size <= 64
    assert figures.padding_waste is not None and figures.padding_waste >= 0
    assert run.generator_cpu_s > 0


async def test_errors_are_counted_by_kind_not_as_latency(naive_url: str) -> None:
    workload = Workload("no-such-model", "chat", airline_tweets())
    run = await closed_loop(naive_url, workload, concurrency=1, duration_s=0.5, warmup_s=0.0)
    assert run.requests == 0 and run.texts == 0
    assert set(run.errors) == {"http 404"}


async def test_open_loop_answers_every_request(naive_url: str) -> None:
    workload = Workload(TINY_MODEL, "chat", airline_tweets(), protocol="infer")
    run = await open_loop(naive_url, workload, rate_per_s=50.0, duration_s=1.0, warmup_s=0.2)
    assert run.requests > 0 and not run.errors
    assert run.texts == run.requests
