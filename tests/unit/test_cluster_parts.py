"""The pieces of ``--frontends`` that need no process: domain errors across the boundary,
metrics merged over processes, the ``auto`` rule."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server import errors
from server.cluster import messages as m
from server.cluster.metrics_merge import merge
from server.cluster.mode import auto_frontends


@pytest.mark.parametrize("error", [
    errors.QueueFull("queue full", retry_after_s=2.5),
    errors.DeadlineUnreachable("too late", retry_after_s=0.25),
    errors.PayloadTooLarge("inputs: 99 texts"),
    errors.ModelNotReady("model 'x' is LOADING"),
])
def test_a_domain_error_crosses_with_its_type_message_and_fields(error: Exception) -> None:
    back = m.decode_error(m.loads(m.dumps(("e", m.encode_error(error))))[1])
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert vars(back) == vars(error)


def test_any_other_error_becomes_inference_failed() -> None:
    back = m.decode_error(m.encode_error(ZeroDivisionError("boom")))
    assert type(back) is errors.InferenceFailed
    assert "ZeroDivisionError: boom" in str(back)
    assert type(m.decode_error(("NoSuchError", "x", {}))) is errors.InferenceFailed


def _process(requests: int, seconds: list[float]) -> bytes:
    registry = CollectorRegistry()
    Counter("reqs", "Requests.", ["model"], registry=registry).labels("a").inc(requests)
    h = Histogram("lat_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry)
    for s in seconds:
        h.observe(s)
    return generate_latest(registry)


def test_metrics_of_several_processes_add_up() -> None:
    merged = merge([_process(3, [0.05]), _process(4, [0.5, 2.0])])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(merged.decode()) for s in f.samples}
    assert samples[("reqs_total", (("model", "a"),))] == 7
    assert samples[("lat_seconds_bucket", (("le", "0.1"),))] == 1
    assert samples[("lat_seconds_bucket", (("le", "1.0"),))] == 2
    assert samples[("lat_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("lat_seconds_count", ())] == 3


@pytest.mark.parametrize(("cores", "device", "gpu", "expected"), [
    (2, "cuda", True, 0),  # 2 cores: the front ends would take the engine's
    (16, "", False, 0),  # CPU host
    (16, "cpu", True, 0),  # the models run on the CPU
    (16, "", True, 15),
    (8, "cuda:1", False, 7),
    (200, "cuda", True, 64),
])
def test_auto(cores: int, device: str, gpu: bool, expected: int) -> None:
    assert auto_frontends(cores, device, gpu) == expected
