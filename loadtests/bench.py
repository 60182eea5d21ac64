"""``python -m loadtests.bench`` (also ``sluice bench``): Sluice against its references, one run.

For every request shape and concurrency it measures, one target at a time:

- ``ceiling``: the engine's offline policies (same engine and texts, no HTTP: arrival-order
  batches, length-sorted batches, one text per call, each at every instance x thread split of
  the cores), in its own process (:mod:`loadtests.ceiling`); the best of them is the "best
  offline policy";
- ``naive``: the per-request FastAPI server of :mod:`loadtests.naive_server`;
- ``sluice``: ``sluice serve --no-build`` on the same repository and model (or ``--sluice-url``),
  and one more Sluice target per ``--variants`` entry (``sluice[auth]`` ...: the cost of options,
  :mod:`loadtests.variants`).

Closed loop at each concurrency, then an open loop at a fixed arrival rate (by default 70% of
the best closed-loop request rate of the first repetition). ``--repeat K`` runs the whole target
set K times, alternating the order; each point is the median and its spread is reported
(:mod:`loadtests.repeats`). Texts: the model's own corpus (:func:`loadtests.corpus.corpus_for`).
It prints a table, checks the targets of ``--targets-profile`` (:mod:`loadtests.targets`), and
writes a JSON report, a PNG plot and a Markdown section for RESULTS.md under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtests import servers
from loadtests.bench_args import TARGETS, build_parser, cpu_list, run_meta
from loadtests.ceiling import offline_rows
from loadtests.corpus import corpus_for
from loadtests.engine_model import available_cores
from loadtests.loadgen import RawRun, closed_loop, install_fast_loop, open_loop
from loadtests.probes import ServerProbe
from loadtests.repeats import aggregate, round_order
from loadtests.report import plot, results_section, table_rows
from loadtests.stats import LatencySummary, RunResult
from loadtests.targets import best_offline, check_targets, resolve_profile
from loadtests.variants import Variant, prepare, version_repository
from loadtests.workload import Workload


@dataclass
class Plan:
    args: argparse.Namespace
    threads: int
    texts: tuple[str, ...]
    ceiling_duration_s: float
    batch1_texts: int
    repository: Path | None = None  # what Sluice serves (an overlay for --version)
    rates: dict[tuple[str, str], float] = field(default_factory=dict)  # open loop, per target


def _plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        if args.concurrency == [1, 8, 32, 128]:
            args.concurrency = [1, 8]
        args.duration = min(args.duration, 1.0)
        args.warmup = min(args.warmup, 0.3)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    cores = len(cpu_list(args.server_cpus)) if args.server_cpus else available_cores()
    threads = args.threads or cores
    return Plan(args, threads, corpus_for(args.model), 0.3 if args.quick else 3.0,
                20 if args.quick else 5000)


def measure_ceiling(plan: Plan) -> tuple[list[RunResult], dict[str, Any]]:
    a = plan.args
    command = servers.pinned([
        sys.executable, "-m", "loadtests.ceiling", "--model-repository", str(a.model_repository),
        "--model", a.model, "--cores", str(plan.threads), "--batch-size",
        str(a.ceiling_batch_size), "--duration", str(plan.ceiling_duration_s),
        "--batch1-texts", str(plan.batch1_texts), "--json",
        *(["--version", a.version] if a.version else []),
        *(["--splits", ",".join(a.ceiling_splits)] if a.ceiling_splits else [])], a.server_cpus)
    done = subprocess.run(command, capture_output=True, text=True, env=servers.thread_env(plan.threads))
    if done.returncode != 0:
        raise RuntimeError(f"ceiling failed ({done.returncode}):\n{done.stderr[-3000:]}")
    doc: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return offline_rows(doc), doc


def _result(target: str, shape: str, mode: str, concurrency: int, raw: RawRun,
            probe: ServerProbe, rate: float | None = None) -> RunResult:
    figures = probe.figures()
    return RunResult(
        target=target, shape=shape, mode=mode, concurrency=concurrency, duration_s=raw.window_s,
        requests=raw.requests, texts=raw.texts, errors=sum(raw.errors.values()),
        texts_per_s=raw.texts / raw.window_s, requests_per_s=raw.requests / raw.window_s,
        latency=LatencySummary.of(raw.latencies_s), offered_rate=rate,
        error_kinds=dict(raw.errors), mean_batch_size=figures.mean_batch_size,
        padding_waste=figures.padding_waste, generator_cpu=raw.generator_cores,
        server_cpu=figures.server_cores,
        extra={"max_generator_lateness_ms": raw.max_lateness_s * 1000.0} if mode == "open" else {},
    )


async def sweep(plan: Plan, target: str, url: str, pid: int | None,
                api_key: str | None = None) -> list[RunResult]:
    """Closed loop over every shape and concurrency, then the open loop per shape (at the rate
    of this target's first sweep, so repetitions measure the same point)."""
    a = plan.args
    version = getattr(a, "version", None)
    results: list[RunResult] = []
    for shape in a.shapes:
        closed: list[RunResult] = []
        for concurrency in a.concurrency:
            workload = Workload(a.model, shape, plan.texts, a.protocol, version=version,
                                api_key=api_key)
            probe = ServerProbe(target.split("[")[0], url, a.model, pid)
            raw = await closed_loop(url, workload, concurrency, a.duration, a.warmup, a.timeout,
                                    on_start=probe.begin, on_end=probe.end)
            result = _result(target, shape, "closed", concurrency, raw, probe)
            _progress(result)
            closed.append(result)
        results.extend(closed)
        rate = a.open_loop_rate
        if rate is None and closed:
            rate = plan.rates.setdefault(
                (target, shape), a.open_loop_fraction * max(r.requests_per_s for r in closed))
        if rate:
            workload = Workload(a.model, shape, plan.texts, a.protocol, version=version,
                                api_key=api_key)
            probe = ServerProbe(target.split("[")[0], url, a.model, pid)
            raw = await open_loop(url, workload, rate, a.duration, a.warmup, a.timeout,
                                  on_start=probe.begin, on_end=probe.end)
            result = _result(target, shape, "open", 0, raw, probe, rate)
            _progress(result)
            results.append(result)
    return results


def _progress(r: RunResult) -> None:
    load = f"c={r.concurrency}" if r.mode == "closed" else f"{r.offered_rate:.0f} req/s open"
    print(f"  {r.target:7} {r.shape:5} {load:>16}: {r.texts_per_s:8.1f} texts/s  "
          f"p50 {r.latency.p50_ms:7.2f} ms  p99 {r.latency.p99_ms:7.2f} ms  errors {r.errors}"
          + (f" {r.error_kinds}" if r.errors else ""), file=sys.stderr, flush=True)


def run_server_target(plan: Plan, target: str, variant: Variant | None = None) -> list[RunResult]:
    a = plan.args
    variant = variant or Variant("default")
    env = {**servers.thread_env(plan.threads), **variant.env}
    name = variant.target if target == "sluice" else target
    if target == "sluice" and a.sluice_url:
        return asyncio.run(sweep(plan, name, a.sluice_url.rstrip("/"), None, variant.api_key))
    port = servers.free_port()
    if target == "naive":
        command = servers.naive_command(a.model_repository, a.model, port, plan.threads, a.version)
    else:
        served = variant.repository or plan.repository or a.model_repository
        command = servers.sluice_command(served, a.model, port,
                                         [*a.sluice_arg, *variant.args])
    command = servers.pinned(command, a.server_cpus)
    with servers.serve(name, command, port, env, a.ready_timeout) as server:
        print(f"{name}: serving at {server.url} (pid {server.process.pid})", file=sys.stderr)
        return asyncio.run(sweep(plan, name, server.url, server.process.pid, variant.api_key))


def measure_rounds(plan: Plan, meta: dict[str, Any]) -> tuple[list[RunResult], dict[str, str]]:
    """Every target (Sluice once per variant), ``--repeat`` rounds, alternating the order."""
    a = plan.args
    variants = {f"sluice:{v}": v for v in a.variants}
    units = [t for t in TARGETS if t in a.targets and t != "sluice"]
    units += list(variants) if "sluice" in a.targets else []
    failures: dict[str, str] = {}
    raw: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        if a.version:
            plan.repository = version_repository(a.model_repository, a.model, a.version, Path(tmp))
        served = plan.repository or a.model_repository
        prepared = {u: prepare(v, Path(tmp) / v, served, a.model) for u, v in variants.items()}
        for i in range(a.repeat):
            for unit in round_order(units, i):
                if unit in failures:
                    continue
                print(f"round {i + 1}/{a.repeat}: {unit}", file=sys.stderr)
                try:
                    rows = _measure_unit(plan, unit, prepared.get(unit), meta)
                except (servers.ServerFailed, OSError, RuntimeError) as e:
                    # One broken target must not cost the figures of the others.
                    failures[unit] = str(e)
                    print(f"{unit}: FAILED, skipped: {e}", file=sys.stderr)
                    continue
                for r in rows:
                    r.extra["round"] = i
                raw.extend(rows)
    return raw, failures


def _measure_unit(plan: Plan, unit: str, variant: Variant | None,
                  meta: dict[str, Any]) -> list[RunResult]:
    if unit == "ceiling":
        rows, doc = measure_ceiling(plan)
        meta["model_version"] = doc["version"]
        return rows
    return run_server_target(plan, unit.split(":")[0], variant)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.model_repository = args.model_repository.resolve()
    plan = _plan(args)
    install_fast_loop()
    if args.generator_cpus:
        # The servers must not inherit the generator's mask: they get theirs, or every CPU.
        args.server_cpus = args.server_cpus or f"0-{(os.cpu_count() or 1) - 1}"
        os.sched_setaffinity(0, cpu_list(args.generator_cpus))
    cores = os.cpu_count() or 1
    profile = resolve_profile(args.targets_profile, args.model, args.version, args.protocol)
    meta = run_meta(args, argv, plan.threads, len(plan.texts), profile)
    raw, failures = measure_rounds(plan, meta)
    meta["failures"] = failures
    results = aggregate(raw)
    best = best_offline(results)
    if best is not None:
        meta["best_offline"] = (f"{best.shape} at {best.extra.get('split')} (instances x "
                                f"threads): {best.texts_per_s:.1f} texts/s")
    checks = check_targets(results, args.shapes, profile)
    section = results_section(results, checks, meta, cores)
    print(section)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "results": [r.to_json() for r in results],
              "runs": [r.to_json() for r in raw], "targets": [c.to_json() for c in checks]}
    json_path = args.out / f"bench-{stamp}.json"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    (args.out / f"bench-{stamp}.md").write_text(section)
    written = [json_path, args.out / f"bench-{stamp}.md"]
    if not args.no_plot:
        png = plot(results, args.out / f"bench-{stamp}.png",
                   f"{args.model} on {meta['machine'].split(',')[0]}")
        if png is not None:
            written.append(png)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if failures:
        return 1
    if args.check and any(c.passed is False for c in checks):
        return 2
    return 0


__all__ = ["build_parser", "main", "table_rows"]

if __name__ == "__main__":
    raise SystemExit(main())
