"""``python -m loadtests.baseline --commit REV``: this tree's Sluice against commit REV's, interleaved.

A change that should leave performance alone is checked here: REV is checked out into a
temporary git worktree, and the two servers (this tree's code and REV's, the same model
repository and weights, the same thread settings) are measured by the same ``sluice bench``
sweep, one after the other, ``--runs`` times, alternating which goes first. The table gives
the median texts/s of each over the runs, their spread (min to max) and the ratio.

    python -m loadtests.baseline --commit main~3 --runs 3 -- --shapes chat --concurrency 1,8,32

Everything after ``--`` is a ``sluice bench`` option (see ``python -m loadtests.bench -h``);
the open loop is off unless asked for. Writes ``baseline-<stamp>.json`` / ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from loadtests import bench, servers
from loadtests.loadgen import install_fast_loop
from loadtests.report import git_commit, machine_line
from loadtests.stats import RunResult

LABELS = ("current", "baseline")
Key = tuple[str, int]


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """``commit`` checked out, detached, in a temporary worktree of this repository."""
    root = servers.REPO_ROOT
    with tempfile.TemporaryDirectory(prefix="sluice-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(tree),
                        commit], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                           check=False)


def measure(plan: bench.Plan, tree: Path, label: str) -> list[RunResult]:
    """One closed-loop sweep of a server running the code of ``tree``."""
    a = plan.args
    env = servers.thread_env(plan.threads)
    env["PYTHONPATH"] = str(tree)  # that tree's server/ and engines/, not this one's
    port = servers.free_port()
    command = [sys.executable, "-c", "from server.cli import main; raise SystemExit(main())",
               "serve", "--model-repository", str(a.model_repository), "--host", "127.0.0.1",
               "--port", str(port), "--models", a.model, "--no-build", *a.sluice_arg]
    command = servers.pinned(command, a.server_cpus)
    with servers.serve(label, command, port, env, a.ready_timeout, cwd=tree) as server:
        print(f"{label}: {tree} serving at {server.url}", file=sys.stderr)
        results = asyncio.run(bench.sweep(plan, "sluice", server.url, server.process.pid))
    for r in results:
        r.target = label
    return results


def summarise(runs: dict[str, list[list[RunResult]]]) -> list[dict[str, object]]:
    """Per (shape, concurrency): median and spread of texts/s for each label, and the ratio."""
    values: dict[str, dict[Key, list[float]]] = {label: {} for label in LABELS}
    for label, sweeps in runs.items():
        for sweep in sweeps:
            for r in sweep:
                if r.mode == "closed":
                    values[label].setdefault((r.shape, r.concurrency), []).append(r.texts_per_s)
    rows: list[dict[str, object]] = []
    for key in sorted(values["current"]):
        cur, base = values["current"][key], values["baseline"].get(key, [])
        if not base:
            continue
        cur_m, base_m = statistics.median(cur), statistics.median(base)
        rows.append({"shape": key[0], "concurrency": key[1],
                     "current": cur_m, "current_spread": [min(cur), max(cur)],
                     "baseline": base_m, "baseline_spread": [min(base), max(base)],
                     "ratio": cur_m / base_m if base_m else float("nan")})
    return rows


def render(rows: list[dict[str, object]], meta: dict[str, object]) -> str:
    lines = [f"Baseline check: {meta['current']} against {meta['baseline']} ({meta['runs']} "
             f"interleaved runs, {meta['model']}, {meta['machine']})", "",
             "| shape | c | current texts/s (spread) | baseline texts/s (spread) | ratio |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        cs, bs = r["current_spread"], r["baseline_spread"]
        assert isinstance(cs, list) and isinstance(bs, list)
        lines.append(f"| {r['shape']} | {r['concurrency']} | {r['current']:.0f} ({cs[0]:.0f}-"
                     f"{cs[1]:.0f}) | {r['baseline']:.0f} ({bs[0]:.0f}-{bs[1]:.0f}) | "
                     f"{r['ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.baseline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commit", required=True, help="the baseline: any git revision")
    p.add_argument("--runs", type=int, default=3, help="interleaved runs of each (default 3)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = build_parser().parse_args(own)
    bench_args = bench.build_parser().parse_args(rest)
    if bench_args.open_loop_rate is None:
        bench_args.open_loop_rate = 0.0
    bench_args.model_repository = bench_args.model_repository.resolve()
    plan = bench._plan(bench_args)
    install_fast_loop()
    runs: dict[str, list[list[RunResult]]] = {label: [] for label in LABELS}
    baseline = subprocess.run(["git", "-C", str(servers.REPO_ROOT), "rev-parse", "--short",
                               args.commit], check=True, capture_output=True, text=True).stdout.strip()
    with checkout(args.commit) as tree:
        for i in range(args.runs):
            order = LABELS if i % 2 == 0 else LABELS[::-1]
            for label in order:
                runs[label].append(measure(plan, servers.REPO_ROOT if label == "current" else tree,
                                           label))
    rows = summarise(runs)
    meta: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_line(), "current": git_commit(), "baseline": baseline,
        "runs": args.runs, "model": bench_args.model, "bench_args": rest}
    text = render(rows, meta)
    print(text)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = bench_args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"baseline-{stamp}.json").write_bytes(
        orjson.dumps({"meta": meta, "rows": rows}, option=orjson.OPT_INDENT_2))
    (out / f"baseline-{stamp}.md").write_text(text)
    print(f"wrote {out / f'baseline-{stamp}.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
