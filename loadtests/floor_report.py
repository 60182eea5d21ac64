"""The floor benchmark's summary: medians and spreads per point, ratios to the floor, the table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def _spread(values: Sequence[float | None]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(finite), "min": min(finite), "max": max(finite)}


def summarize(reps: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per point: the median and min..max of each figure over the repetitions."""
    out: dict[str, dict[str, Any]] = {}
    for key, runs in reps.items():
        out[key] = {
            name: _spread([r[name] for r in runs])
            for name in ("req_per_s", "server_cpu_us_per_req", "server_cores", "generator_cores",
                         "p50_ms", "p99_ms")
        }
        out[key]["errors"] = sum(sum(r["errors"].values()) for r in runs)
        out[key]["bad_answers"] = [r["bad_answer"] for r in runs if r["bad_answer"]]
    return out


def ratios(reps: dict[str, list[dict[str, Any]]], concurrency: int) -> dict[str, dict[str, Any]]:
    """Same-repetition ratios: each null-engine route's req/s over the floor's, and the real
    model's c=1 p50 of sluice over the naive server's."""
    found: dict[str, dict[str, Any]] = {}
    floor = reps.get(f"floor floor c={concurrency}", [])
    for route in ("classify", "infer-json", "infer-binary"):
        runs = reps.get(f"sluice-null {route} c={concurrency}", [])
        values = [r["req_per_s"] / f["req_per_s"] for r, f in zip(runs, floor, strict=False)
                  if f["req_per_s"] > 0]
        if values:
            found[f"{route} / floor req/s (c={concurrency})"] = _spread(values)
        # The same ratio from CPU per request: what it would be if both had a core to
        # themselves (robust when other processes take a varying share of the server's core).
        values = [f["server_cpu_us_per_req"] / r["server_cpu_us_per_req"]
                  for r, f in zip(runs, floor, strict=False)
                  if f["server_cpu_us_per_req"] and r["server_cpu_us_per_req"]]
        if values:
            found[f"{route} / floor by CPU per request (c={concurrency})"] = _spread(values)
    for route, load in (("classify", concurrency), ("infer-json", concurrency), ("classify", 1)):
        now = reps.get(f"sluice-null {route} c={load}", [])
        base = reps.get(f"base-null {route} c={load}", [])
        values = [b["server_cpu_us_per_req"] / n["server_cpu_us_per_req"]
                  for n, b in zip(now, base, strict=False)
                  if n["server_cpu_us_per_req"] and b["server_cpu_us_per_req"]]
        if values:
            found[f"baseline / this tree, CPU per request ({route} c={load})"] = _spread(values)
    sluice, naive = reps.get("sluice-real classify c=1", []), reps.get("naive-real classify c=1", [])
    values = [s["p50_ms"] / n["p50_ms"] for s, n in zip(sluice, naive, strict=False)
              if n["p50_ms"] and math.isfinite(n["p50_ms"])]
    if values:
        found["sluice / naive p50 (real model, c=1)"] = _spread(values)
    return found


def _f(spread: dict[str, float | None], digits: int = 0) -> str:
    m, lo, hi = spread["median"], spread["min"], spread["max"]
    if m is None or lo is None or hi is None:
        return "-"
    return f"{m:.{digits}f} ({lo:.{digits}f}..{hi:.{digits}f})"


def table(summary: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[str]:
    rows = ["| server | route | load | req/s | server CPU us/req | server cores | gen cores "
            "| p50 ms | p99 ms | errors |", "|" + " --- |" * 10]
    for key, s in summary.items():
        server, route, load = key.split(" ")
        rows.append(f"| {server} | {route} | {load} | {_f(s['req_per_s'])} | "
                    f"{_f(s['server_cpu_us_per_req'])} | {_f(s['server_cores'], 2)} | "
                    f"{_f(s['generator_cores'], 2)} | {_f(s['p50_ms'], 2)} | {_f(s['p99_ms'], 2)} "
                    f"| {s['errors']}{' BAD ANSWERS' if s['bad_answers'] else ''} |")
    rows += ["", "| ratio | median (min..max) |", "| --- | --- |"]
    rows += [f"| {name} | {_f(v, 3)} |" for name, v in found.items()]
    return rows


def section(meta: dict[str, Any], summary: dict[str, dict[str, Any]],
            found: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"## Floor benchmark, {meta['date']}",
        "",
        f"- Machine: {meta['machine']}",
        f"- Commit: {meta['commit']}",
        f"- Command: `{meta['command']}`",
        f"- Pinning: {meta['pinning']}",
        f"- {meta['reps']} interleaved repetitions of {meta['duration_s']} s per point after "
        f"{meta['warmup_s']} s warm-up; medians, (min..max) over the repetitions",
        "",
        *table(summary, found),
        "",
        "`server CPU us/req`: the server process's utime+stime over the window per answered "
        "request. `gen cores`: the load generator's own CPU (on its own core when pinned).",
        "",
    ]
    return "\n".join(lines)
