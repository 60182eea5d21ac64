"""``python -m loadtests.bench`` (also ``sluice bench``): Sluice against its references, one run.

For every request shape and concurrency it measures, one target at a time:

- ``ceiling``: the engine's offline ceiling (same engine and texts, batched, no HTTP), in its
  own process (:mod:`loadtests.ceiling`);
- ``naive``: the per-request FastAPI server of :mod:`loadtests.naive_server`;
- ``sluice``: ``sluice serve --no-build`` on the same repository and model (or ``--sluice-url``).

Closed loop at each concurrency, then an open loop at a fixed arrival rate (by default 70% of
the best closed-loop request rate). It prints a table, checks the targets, and writes a JSON
report, a PNG plot and a Markdown section for RESULTS.md under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtests import servers
from loadtests.corpus import airline_tweets
from loadtests.engine_model import available_cores
from loadtests.loadgen import RawRun, closed_loop, install_fast_loop, open_loop
from loadtests.probes import ServerProbe
from loadtests.report import git_commit, machine_line, plot, results_section, table_rows
from loadtests.stats import LatencySummary, RunResult
from loadtests.targets import check_targets
from loadtests.workload import PROTOCOLS, SHAPES, Workload

TARGETS = ("ceiling", "naive", "sluice")
DEFAULT_OUT = Path(__file__).resolve().parent / "reports"


def _csv(kind: type, choices: Sequence[str] | None = None) -> Any:
    def parse(value: str) -> list[Any]:
        items = [kind(v.strip()) for v in value.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        if choices is not None:
            bad = [i for i in items if i not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"{bad}: choose from {', '.join(choices)}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sluice bench", description="Benchmark Sluice against a naive server and the "
        "engine's offline ceiling on the airline tweets.")
    p.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    p.add_argument("--model", default="airline-sentiment")
    p.add_argument("--targets", type=_csv(str, TARGETS), default=list(TARGETS),
                   help="comma list of ceiling,naive,sluice (default: all, in that order)")
    p.add_argument("--shapes", type=_csv(str, SHAPES), default=list(SHAPES),
                   help="chat (1 text per request), batch (16-64 texts per request)")
    p.add_argument("--concurrency", type=_csv(int), default=[1, 8, 32, 128])
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per point")
    p.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each point")
    p.add_argument("--open-loop-rate", type=float, default=None,
                   help="open-loop arrival rate in requests/s (default: a fraction of the best "
                   "closed-loop rate of each target and shape; 0 turns the open loop off)")
    p.add_argument("--open-loop-fraction", type=float, default=0.7)
    p.add_argument("--protocol", choices=PROTOCOLS, default="classify")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads for every target (0: the server's cores)")
    p.add_argument("--server-cpus", default=None,
                   help="taskset CPU list for the servers and the ceiling, e.g. 1 or 0-1")
    p.add_argument("--generator-cpus", default=None,
                   help="CPU list the load generator pins itself to, e.g. 0")
    p.add_argument("--sluice-url", default=None,
                   help="measure an already running Sluice instead of starting one")
    p.add_argument("--sluice-arg", action="append", default=[],
                   help="extra argument for sluice serve (repeatable)")
    p.add_argument("--ceiling-batch-size", type=int, default=32)
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    p.add_argument("--ready-timeout", type=float, default=180.0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--check", action="store_true",
                   help="exit 2 when a measured target is missed (for CI)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run for the test suite: concurrency 1,8, 1 s points")
    return p


@dataclass
class Plan:
    args: argparse.Namespace
    threads: int
    texts: tuple[str, ...]
    ceiling_duration_s: float
    batch1_texts: int


def _plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        if args.concurrency == [1, 8, 32, 128]:
            args.concurrency = [1, 8]
        args.duration = min(args.duration, 1.0)
        args.warmup = min(args.warmup, 0.3)
    cores = len(_cpu_list(args.server_cpus)) if args.server_cpus else available_cores()
    threads = args.threads or cores
    return Plan(args, threads, airline_tweets(), 1.0 if args.quick else 5.0,
                20 if args.quick else 200)


def _cpu_list(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def measure_ceiling(plan: Plan) -> tuple[list[RunResult], dict[str, Any]]:
    a = plan.args
    command = servers.pinned([
        sys.executable, "-m", "loadtests.ceiling", "--model-repository", str(a.model_repository),
        "--model", a.model, "--threads", str(plan.threads), "--batch-size",
        str(a.ceiling_batch_size), "--duration", str(plan.ceiling_duration_s),
        "--batch1-texts", str(plan.batch1_texts), "--json"], a.server_cpus)
    done = subprocess.run(command, capture_output=True, text=True, env=servers.thread_env(plan.threads))
    if done.returncode != 0:
        raise RuntimeError(f"ceiling failed ({done.returncode}):\n{done.stderr[-3000:]}")
    doc: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for key, label in (("arrival", "arrival-order"), ("sorted", "length-sorted")):
        fig = doc[key]
        ms = fig["median_batch_ms"]
        rows.append(RunResult(
            target="ceiling", shape=label, mode="offline", concurrency=doc["batch_size"],
            duration_s=fig["seconds"], requests=fig["batches"], texts=fig["texts"], errors=0,
            texts_per_s=fig["texts_per_s"], requests_per_s=fig["batches"] / fig["seconds"],
            latency=LatencySummary(fig["batches"], ms, ms, float("nan"), float("nan"), float("nan")),
            mean_batch_size=fig["texts"] / fig["batches"], padding_waste=fig["padding_waste"],
            extra={"load": f"batches of {doc['batch_size']}, no HTTP"},
        ))
    b1 = doc["batch1_median_ms"]
    rows.append(RunResult(
        target="ceiling", shape="batch-1", mode="offline", concurrency=1, duration_s=0.0,
        requests=plan.batch1_texts, texts=plan.batch1_texts, errors=0, texts_per_s=1000.0 / b1,
        requests_per_s=1000.0 / b1,
        latency=LatencySummary(plan.batch1_texts, b1, b1, doc["batch1_p90_ms"], float("nan"),
                               float("nan")),
        mean_batch_size=1.0, padding_waste=0.0, extra={"load": "one text per call"},
    ))
    return rows, doc


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


async def sweep(plan: Plan, target: str, url: str, pid: int | None) -> list[RunResult]:
    """Closed loop over every shape and concurrency, then the open loop per shape."""
    a = plan.args
    results: list[RunResult] = []
    for shape in a.shapes:
        closed: list[RunResult] = []
        for concurrency in a.concurrency:
            workload = Workload(a.model, shape, plan.texts, a.protocol)
            probe = ServerProbe(target, url, a.model, pid)
            raw = await closed_loop(url, workload, concurrency, a.duration, a.warmup, a.timeout,
                                    on_start=probe.begin, on_end=probe.end)
            result = _result(target, shape, "closed", concurrency, raw, probe)
            _progress(result)
            closed.append(result)
        results.extend(closed)
        rate = a.open_loop_rate
        if rate is None and closed:
            rate = a.open_loop_fraction * max(r.requests_per_s for r in closed)
        if rate:
            workload = Workload(a.model, shape, plan.texts, a.protocol)
            probe = ServerProbe(target, url, a.model, pid)
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


def run_server_target(plan: Plan, target: str) -> list[RunResult]:
    a = plan.args
    env = servers.thread_env(plan.threads)
    if target == "sluice" and a.sluice_url:
        return asyncio.run(sweep(plan, target, a.sluice_url.rstrip("/"), None))
    port = servers.free_port()
    if target == "naive":
        command = servers.naive_command(a.model_repository, a.model, port, plan.threads)
    else:
        command = servers.sluice_command(a.model_repository, a.model, port, a.sluice_arg)
    command = servers.pinned(command, a.server_cpus)
    with servers.serve(target, command, port, env, a.ready_timeout) as server:
        print(f"{target}: serving at {server.url} (pid {server.process.pid})", file=sys.stderr)
        return asyncio.run(sweep(plan, target, server.url, server.process.pid))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.model_repository = args.model_repository.resolve()
    plan = _plan(args)
    install_fast_loop()
    cores = os.cpu_count() or 1
    results: list[RunResult] = []
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_line(),
        "commit": git_commit(),
        "command": "python -m loadtests.bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "model": args.model,
        "threads": plan.threads,
        "protocol": args.protocol,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "pinning": (f"servers on CPUs {args.server_cpus}, generator on {args.generator_cpus}"
                    if args.server_cpus or args.generator_cpus
                    else "none (server and generator share all cores)"),
        "texts": len(plan.texts),
    }
    if "ceiling" in args.targets:
        print("ceiling: measuring the engine offline", file=sys.stderr)
        rows, doc = measure_ceiling(plan)
        meta["model_version"] = doc["version"]
        results.extend(rows)
    if args.generator_cpus:
        os.sched_setaffinity(0, _cpu_list(args.generator_cpus))
    failures: dict[str, str] = {}
    for target in ("naive", "sluice"):
        if target in args.targets:
            try:
                results.extend(run_server_target(plan, target))
            except (servers.ServerFailed, OSError) as e:
                # One broken target must not cost the figures of the others.
                failures[target] = str(e)
                print(f"{target}: FAILED, skipped: {e}", file=sys.stderr)
    meta["failures"] = failures

    checks = check_targets(results, args.shapes)
    section = results_section(results, checks, meta, cores)
    print(section)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "results": [r.to_json() for r in results],
              "targets": [c.to_json() for c in checks]}
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
