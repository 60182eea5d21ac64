"""The performance targets Sluice is held to, checked against one benchmark run.

Every check compares figures from the same run (same machine state, same texts), never
against remembered numbers. A check whose inputs were not measured says so (``passed=None``).
"""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.report import TargetCheck
from loadtests.stats import RunResult


def _closed(results: Sequence[RunResult], target: str, shape: str) -> list[RunResult]:
    return [r for r in results if r.target == target and r.shape == shape and r.mode == "closed"]


def _at(results: Sequence[RunResult], target: str, shape: str, concurrency: int) -> RunResult | None:
    for r in _closed(results, target, shape):
        if r.concurrency == concurrency:
            return r
    return None


def _offline(results: Sequence[RunResult], shape: str) -> RunResult | None:
    for r in results:
        if r.target == "ceiling" and r.mode == "offline" and r.shape == shape:
            return r
    return None


def saturation(results: Sequence[RunResult], target: str, shape: str) -> RunResult | None:
    """The closed-loop point with the highest throughput."""
    runs = _closed(results, target, shape)
    return max(runs, key=lambda r: r.texts_per_s) if runs else None


def check_targets(results: Sequence[RunResult], shapes: Sequence[str]) -> list[TargetCheck]:
    checks: list[TargetCheck] = []
    ceiling = _offline(results, "arrival-order")
    batch1 = _offline(results, "batch-1")
    for shape in shapes:
        top = saturation(results, "sluice", shape)
        ratio = top.texts_per_s / ceiling.texts_per_s if top and ceiling else None
        checks.append(TargetCheck(
            f"{shape}: Sluice at saturation / arrival-order ceiling", ratio, ">= 0.95",
            None if ratio is None else ratio >= 0.95,
        ))
        waste = top.padding_waste if top else None
        checks.append(TargetCheck(
            f"{shape}: padding waste at saturation", waste, "<= 0.20",
            None if waste is None else waste <= 0.20,
        ))
    sluice32, naive32 = _at(results, "sluice", "chat", 32), _at(results, "naive", "chat", 32)
    speedup = p99_ratio = None
    if sluice32 and naive32 and naive32.texts_per_s > 0:
        speedup = sluice32.texts_per_s / naive32.texts_per_s
        p99_ratio = sluice32.latency.p99_ms / naive32.latency.p99_ms
    checks.append(TargetCheck("chat c=32: Sluice / naive throughput", speedup, ">= 1.3",
                              None if speedup is None else speedup >= 1.3))
    checks.append(TargetCheck("chat c=32: Sluice p99 / naive p99", p99_ratio, "<= 0.5",
                              None if p99_ratio is None else p99_ratio <= 0.5))
    sluice1 = _at(results, "sluice", "chat", 1)
    excess = None
    if sluice1 and batch1:
        excess = sluice1.latency.p50_ms - batch1.latency.p50_ms
    checks.append(TargetCheck("chat c=1: Sluice p50 - engine batch-1 time (ms)", excess, "<= 1.5",
                              None if excess is None else excess <= 1.5))
    for shape in shapes:
        opened = [r for r in results if r.target == "sluice" and r.shape == shape and r.mode == "open"]
        if not opened:
            checks.append(TargetCheck(f"{shape}: open loop p99 / p50", None, "<= 4, no errors", None))
            continue
        r = opened[-1]
        tail = r.latency.p99_ms / r.latency.p50_ms if r.latency.p50_ms > 0 else None
        ok = tail is not None and tail <= 4.0 and r.errors == 0
        checks.append(TargetCheck(
            f"{shape}: open loop at {r.offered_rate:.0f} req/s, p99 / p50 ({r.errors} errors)",
            tail, "<= 4, no errors", ok,
        ))
    return checks
