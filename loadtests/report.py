"""The benchmark's outputs: the table, the targets verdict, the plot and the RESULTS section."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.repeats import paired
from loadtests.stats import RunResult


@dataclass(frozen=True)
class TargetCheck:
    name: str
    value: float | None
    limit: str
    passed: bool | None  # None: not measured in this run
    rounds: tuple[float, ...] = ()  # the same ratio within each repetition, when repeated

    def to_json(self) -> dict[str, Any]:
        value = self.value if self.value is not None and math.isfinite(self.value) else None
        return {"name": self.name, "value": value, "limit": self.limit, "passed": self.passed,
                "rounds": list(self.rounds)}


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.0f}%"


TABLE_HEADER = (
    "| target | shape | load | texts/s | spread | req/s | p50 ms | p90 ms | p99 ms | errors "
    "| batch | pad waste | gen CPU | srv CPU |"
)


def table_rows(results: Sequence[RunResult], cores: int) -> list[str]:
    """One row per point; ``spread`` is (max - min) / median of texts/s over the repetitions."""
    rows = [TABLE_HEADER, "|" + " --- |" * 14]
    for r in results:
        if r.mode == "closed":
            load = f"c={r.concurrency}"
        elif r.mode == "open":
            load = f"{_fmt(r.offered_rate, 0)} req/s open"
        else:
            load = r.extra.get("load", "offline")
        gen = None if r.generator_cpu is None else r.generator_cpu / cores
        srv = None if r.server_cpu is None else r.server_cpu / cores
        rows.append(
            f"| {r.target} | {r.shape} | {load} | {_fmt(r.texts_per_s)} | {_spread(r)} | "
            f"{_fmt(r.requests_per_s)} | {_fmt(r.latency.p50_ms, 2)} | {_fmt(r.latency.p90_ms, 2)} | "
            f"{_fmt(r.latency.p99_ms, 2)} | {r.errors} | {_fmt(r.mean_batch_size)} | "
            f"{_pct(r.padding_waste)} | {_pct(gen)} | {_pct(srv)} |"
        )
    return rows


def _spread(r: RunResult) -> str:
    runs = r.extra.get("texts_per_s_runs") or []
    if len(runs) < 2:
        return "-"
    return f"{100.0 * r.extra.get('spread', 0.0):.0f}% ({min(runs):.0f}-{max(runs):.0f})"


def options_rows(results: Sequence[RunResult]) -> list[str]:
    """The cost of each Sluice variant (``sluice[auth]`` ...): its figures over the default's at
    the same points (texts/s ratio at every concurrency, p50 ratio at the lowest)."""
    base = {(r.shape, r.concurrency): r for r in results
            if r.target == "sluice" and r.mode == "closed"}
    variants = sorted({r.target for r in results if r.target.startswith("sluice[")})
    if not base or not variants:
        return []
    rows = ["| variant | shape | load | texts/s | texts/s vs default | per round | p50 ms vs default |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if r.target in variants and r.mode == "closed" and (r.shape, r.concurrency) in base:
            b = base[(r.shape, r.concurrency)]
            tps = r.texts_per_s / b.texts_per_s if b.texts_per_s else None
            p50 = r.latency.p50_ms / b.latency.p50_ms if b.latency.p50_ms else None
            rounds = paired(r, b)
            span = f"{min(rounds):.3f}-{max(rounds):.3f}" if rounds else "-"
            rows.append(f"| {r.target} | {r.shape} | c={r.concurrency} | {_fmt(r.texts_per_s)} | "
                        f"{_fmt(tps, 3)} | {span} | {_fmt(p50, 3)} |")
    return rows


def targets_rows(checks: Sequence[TargetCheck]) -> list[str]:
    """The verdict; ``per round`` gives a ratio's range over the repetitions (each round's
    figures divided by the same round's: drift between rounds cancels out)."""
    rows = ["| target | measured | per round | limit | verdict |", "| --- | --- | --- | --- | --- |"]
    for c in checks:
        verdict = "not measured" if c.passed is None else ("pass" if c.passed else "MISS")
        rounds = f"{min(c.rounds):.3f}-{max(c.rounds):.3f}" if len(c.rounds) > 1 else "-"
        rows.append(f"| {c.name} | {_fmt(c.value, 3)} | {rounds} | {c.limit} | {verdict} |")
    return rows


def machine_line() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def git_commit(cwd: Path | None = None) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=cwd).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (with uncommitted changes)" if dirty else "")


def results_section(
    results: Sequence[RunResult], checks: Sequence[TargetCheck], meta: dict[str, Any], cores: int
) -> str:
    """A Markdown section to paste into ``loadtests/RESULTS.md``."""
    lines = [
        f"## {meta['date']}",
        "",
        f"- Machine: {meta['machine']}",
        f"- Commit: {meta['commit']}",
        f"- Model: {meta['model']} (version {meta.get('model_version', '?')}), "
        f"{meta['threads']} intra-op threads for every target",
        f"- Command: `{meta['command']}`",
        f"- Pinning: {meta['pinning']}",
        f"- Protocol: {meta['protocol']}; {meta['duration_s']} s per point after "
        f"{meta['warmup_s']} s warm-up; {meta.get('repeat', 1)} interleaved repetition(s), "
        "each point the median, spread = (max - min) / median of texts/s",
        f"- Corpus: {meta.get('texts', '?')} texts; targets profile: {meta.get('profile', '?')}",
        *([f"- Best offline policy: {meta['best_offline']}"] if meta.get("best_offline") else []),
        *[f"- FAILED target {name}: {why.splitlines()[0] if why else ''}"
          for name, why in meta.get("failures", {}).items()],
        "",
        *table_rows(results, cores),
        "",
        "CPU columns are shares of the whole machine (all cores). `gen CPU` is the load "
        "generator itself, which competes with the server for the same cores. Ceiling rows "
        "give the median time of one engine call (tokenize + engine) in the p50 column and "
        "the split as instances x intra-op threads per instance (instances run concurrently).",
        *_error_lines(results),
        "",
        *targets_rows(checks),
        "",
        *_with_blank(options_rows(results)),
    ]
    return "\n".join(lines)


def _with_blank(rows: list[str]) -> list[str]:
    return [*rows, ""] if rows else []


def _error_lines(results: Sequence[RunResult]) -> list[str]:
    lines = []
    for r in results:
        if r.error_kinds:
            load = f"c={r.concurrency}" if r.mode == "closed" else f"{_fmt(r.offered_rate, 0)} req/s"
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(r.error_kinds.items()))
            lines.append(f"- Errors, {r.target} {r.shape} {load}: {kinds}")
    return ["", *lines] if lines else []


_EXTRA_COLORS = ("tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def plot(results: Sequence[RunResult], path: Path, title: str) -> Path | None:
    """Throughput and p99 against concurrency, one line per target and shape."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_tp, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"chat": "-", "batch": "--"}
    colors = {"sluice": "tab:blue", "naive": "tab:orange", "ceiling": "tab:green"}
    series: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        if r.mode == "closed":
            series.setdefault((r.target, r.shape), []).append(r)
    for (target, shape), runs in sorted(series.items()):
        runs = sorted(runs, key=lambda r: r.concurrency)
        xs = [r.concurrency for r in runs]
        if target not in colors:  # a Sluice variant: a colour of its own for both shapes
            colors[target] = _EXTRA_COLORS[(len(colors) - 3) % len(_EXTRA_COLORS)]
        style = dict(linestyle=styles.get(shape, "-"), color=colors[target], marker="o")
        ax_tp.plot(xs, [r.texts_per_s for r in runs], label=f"{target} {shape}", **style)
        ax_p99.plot(xs, [r.latency.p99_ms for r in runs], label=f"{target} {shape}", **style)
    best: dict[str, RunResult] = {}  # each offline policy at its best split
    for r in results:
        if r.target == "ceiling" and r.mode == "offline":
            if r.shape not in best or r.texts_per_s > best[r.shape].texts_per_s:
                best[r.shape] = r
    for policy, r in best.items():
        ax_tp.axhline(r.texts_per_s, color=colors["ceiling"],
                      linestyle={"length-sorted": ":", "batch-1": "--"}.get(policy, "-."),
                      label=f"offline {policy} {r.extra.get('split', '')}")
    ticks = sorted({r.concurrency for r in results if r.mode == "closed"})
    for ax, label in ((ax_tp, "texts/s"), (ax_p99, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        if ticks:
            ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrency (requests in flight)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax_p99.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
