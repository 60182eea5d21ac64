"""Interleaved repetitions: the order of each round, and the median and spread of every point.

``sluice bench --repeat K`` measures the whole target set K times, alternating the order
(ceiling, naive, sluice; then sluice, naive, ceiling; ...), so a slow drift of the machine
(other processes, heat) falls on every target alike. Each point of the tables is then the
median over the K rounds, and its *spread* is (max - min) / median of its texts/s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace

from loadtests.stats import LatencySummary, RunResult

Key = tuple[str, str, str, int, str]


def round_order(targets: Sequence[str], round_index: int) -> list[str]:
    """The targets in the order of round ``round_index`` (0-based): forward, then reversed."""
    return list(targets) if round_index % 2 == 0 else list(targets)[::-1]


def key(r: RunResult) -> Key:
    return (r.target, r.shape, r.mode, r.concurrency, str(r.extra.get("split", "")))


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Sequence[float]) -> float:
    """(max - min) / median; 0 for a single value."""
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def combine(runs: Sequence[RunResult]) -> RunResult:
    """One point from its repetitions: medians of the figures, errors summed, the spread kept."""
    first = runs[0]
    if len(runs) == 1:
        return replace(first, extra={**first.extra, "repeats": 1, "spread": 0.0,
                                     "texts_per_s_runs": [first.texts_per_s]})
    tps = [r.texts_per_s for r in runs]
    lat = [r.latency for r in runs]

    def m(name: str) -> float:
        return float(statistics.median(float(getattr(x, name)) for x in lat))

    errors: dict[str, int] = {}
    for r in runs:
        for kind, n in r.error_kinds.items():
            errors[kind] = errors.get(kind, 0) + n
    return replace(
        first,
        duration_s=sum(r.duration_s for r in runs),
        requests=sum(r.requests for r in runs),
        texts=sum(r.texts for r in runs),
        errors=sum(r.errors for r in runs),
        texts_per_s=statistics.median(tps),
        requests_per_s=statistics.median(r.requests_per_s for r in runs),
        latency=LatencySummary(sum(x.count for x in lat), m("mean_ms"), m("p50_ms"), m("p90_ms"),
                               m("p99_ms"), max(x.max_ms for x in lat)),
        error_kinds=errors,
        mean_batch_size=_median([r.mean_batch_size for r in runs]),
        padding_waste=_median([r.padding_waste for r in runs]),
        generator_cpu=_median([r.generator_cpu for r in runs]),
        server_cpu=_median([r.server_cpu for r in runs]),
        extra={**first.extra, "repeats": len(runs), "spread": spread(tps),
               "texts_per_s_runs": tps},
    )


def aggregate(results: Sequence[RunResult]) -> list[RunResult]:
    """Every point's repetitions combined, in the order each point was first measured."""
    groups: dict[Key, list[RunResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return [combine(runs) for runs in groups.values()]


def paired(a: RunResult | None, b: RunResult | None) -> tuple[float, ...]:
    """a's texts/s over b's within each repetition (both combined points of the same rounds):
    a drift of the machine between rounds cancels out of these ratios."""
    if a is None or b is None:
        return ()
    ra, rb = a.extra.get("texts_per_s_runs") or [], b.extra.get("texts_per_s_runs") or []
    if len(ra) != len(rb) or len(ra) < 2:
        return ()
    return tuple(x / y for x, y in zip(ra, rb, strict=True) if y)
