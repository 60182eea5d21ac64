"""The performance targets Sluice is held to, checked against one benchmark run.

Every check compares figures from the same run (same machine state, same texts), never
against remembered numbers. A check whose inputs were not measured says so (``passed=None``).
With ``--repeat``, the figures are the medians over the repetitions.

Profiles (``sluice bench --targets-profile``):

- ``student``: the CPU throughput issue's targets for the airline student over classify: at
  saturation >= 0.85 of the best offline policy (best of every ceiling policy at every
  instance/thread split); >= 1.3x the naive server's texts/s at c=8 and c=32 and >= 1.0x at
  c=1, for each request shape; p99 at c=32 <= 0.8x naive's;
- ``other``: the same issue's targets for other models (the airline teacher over v2,
  home-intent): >= 1.2x naive at c=32 per shape, and the saturation target;
- ``legacy``: the earlier targets (>= 0.95 of the arrival-order ceiling, padding waste, chat
  c=32 1.3x and p99 0.5x, c=1 p50 within 1.5 ms of one engine call, the open loop's tail);
- ``auto`` (the bench's default): ``student`` for airline-sentiment at its served version over
  classify, ``other`` for every other model, a pinned version or v2 infer.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.repeats import paired
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


PROFILES = ("auto", "student", "other", "legacy")
SATURATION = 0.85
SPEEDUP = {1: 1.0, 8: 1.3, 32: 1.3}
OTHER_SPEEDUP = {32: 1.2}
P99_RATIO = 0.8


def resolve_profile(
    profile: str, model: str, version: str | None = None, protocol: str = "classify"
) -> str:
    """``auto`` made concrete (see the module doc); any other profile as given."""
    if profile != "auto":
        if profile not in PROFILES:
            raise ValueError(f"unknown targets profile {profile!r}; choose from {PROFILES}")
        return profile
    student = model == "airline-sentiment" and version is None and protocol == "classify"
    return "student" if student else "other"


def best_offline(results: Sequence[RunResult]) -> RunResult | None:
    """The fastest offline figure: every policy at every instance/thread split."""
    offline = [r for r in results if r.target == "ceiling" and r.mode == "offline"]
    return max(offline, key=lambda r: r.texts_per_s) if offline else None


def _check(name: str, value: float | None, limit: str, ok: bool | None,
           pair: tuple[RunResult | None, RunResult | None] = (None, None)) -> TargetCheck:
    return TargetCheck(name, value, limit, None if value is None else ok, paired(*pair))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def issue_targets(
    results: Sequence[RunResult], shapes: Sequence[str], speedups: dict[int, float],
    p99_limit: float | None, sluice: str = "sluice",
) -> list[TargetCheck]:
    """Saturation against the best offline policy, the speedups over naive, the p99 ratio."""
    checks: list[TargetCheck] = []
    best = best_offline(results)
    for shape in shapes:
        top = saturation(results, sluice, shape)
        ratio = _ratio(top.texts_per_s if top else None, best.texts_per_s if best else None)
        checks.append(_check(f"{shape}: Sluice at saturation / best offline policy", ratio,
                             f">= {SATURATION}", ratio is not None and ratio >= SATURATION,
                             (top, best)))
        for c, limit in sorted(speedups.items()):
            s, n = _at(results, sluice, shape, c), _at(results, "naive", shape, c)
            ratio = _ratio(s.texts_per_s if s else None, n.texts_per_s if n else None)
            checks.append(_check(f"{shape} c={c}: Sluice / naive texts/s", ratio, f">= {limit}",
                                 ratio is not None and ratio >= limit, (s, n)))
        if p99_limit is not None:
            s, n = _at(results, sluice, shape, 32), _at(results, "naive", shape, 32)
            ratio = _ratio(s.latency.p99_ms if s else None, n.latency.p99_ms if n else None)
            checks.append(_check(f"{shape} c=32: Sluice p99 / naive p99", ratio,
                                 f"<= {p99_limit}", ratio is not None and ratio <= p99_limit))
    return checks


def saturation(results: Sequence[RunResult], target: str, shape: str) -> RunResult | None:
    """The closed-loop point with the highest throughput."""
    runs = _closed(results, target, shape)
    return max(runs, key=lambda r: r.texts_per_s) if runs else None


def check_targets(results: Sequence[RunResult], shapes: Sequence[str], profile: str = "legacy",
) -> list[TargetCheck]:
    """The checks of ``profile`` (a concrete one: see :func:`resolve_profile`)."""
    if profile == "student":
        return issue_targets(results, shapes, SPEEDUP, P99_RATIO)
    if profile == "other":
        return issue_targets(results, shapes, OTHER_SPEEDUP, None)
    if profile != "legacy":
        raise ValueError(f"unknown targets profile {profile!r}")
    return legacy_targets(results, shapes)


def legacy_targets(results: Sequence[RunResult], shapes: Sequence[str]) -> list[TargetCheck]:
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
