"""Pass/fail thresholds of a load-test run, kept apart from the locustfile.

Importing ``locust`` monkey-patches the whole process with gevent, so nothing that a test or
the benchmark imports may import the locustfile; this function is tested on its own.
"""

from __future__ import annotations

import logging
from typing import Any


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


def add_run_options(group: Any) -> None:
    """The options every locustfile here takes: ``--think-time``, ``--p99-ms``,
    ``--max-failure-ratio`` (``group``: an argparse group of Locust's parser)."""
    group.add_argument("--think-time", type=float, default=1.0,
                       help="mean seconds a user waits between requests (0: back to back)")
    group.add_argument("--p99-ms", type=float, default=1000.0,
                       help="headless runs fail when the overall p99 latency exceeds this")
    group.add_argument("--max-failure-ratio", type=float, default=0.01,
                       help="headless runs fail when more than this share of requests failed")


def apply_thresholds(environment: Any, log: logging.Logger) -> None:
    """On Locust's ``quitting`` event: exit code 1 when the run missed a threshold (logged)."""
    options = environment.parsed_options
    if options is None:
        return
    total = environment.stats.total
    verdicts = threshold_violations(
        requests=total.num_requests,
        failures=total.num_failures,
        p99_ms=total.get_response_time_percentile(0.99) or 0.0,
        max_p99_ms=options.p99_ms,
        max_failure_ratio=options.max_failure_ratio,
    )
    for verdict in verdicts:
        log.error("threshold missed: %s", verdict)
    environment.process_exit_code = 1 if verdicts else 0
