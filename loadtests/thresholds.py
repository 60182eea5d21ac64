"""Pass/fail thresholds of a load-test run, kept apart from the locustfile.

Importing ``locust`` monkey-patches the whole process with gevent, so nothing that a test or
the benchmark imports may import the locustfile; this function is tested on its own.
"""

from __future__ import annotations


def threshold_violations(
    requests: int, failures: int, p99_ms: float, max_p99_ms: float, max_failure_ratio: float
) -> list[str]:
    """What a run missed; empty when it passed."""
    if requests == 0 or failures >= requests:
        return ["no request succeeded"]
    missed = []
    ratio = failures / requests
    if ratio > max_failure_ratio:
        missed.append(f"failure ratio {ratio:.4f} > {max_failure_ratio}")
    if p99_ms > max_p99_ms:
        missed.append(f"p99 {p99_ms:.1f} ms > {max_p99_ms} ms")
    return missed
