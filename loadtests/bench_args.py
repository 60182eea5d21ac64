"""The command line of ``sluice bench`` (:mod:`loadtests.bench`) and the run's description."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtests.report import git_commit, machine_line
from loadtests.targets import PROFILES
from loadtests.variants import VARIANTS
from loadtests.workload import PROTOCOLS, SHAPES

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
        "engine's best offline policy on the model's own corpus (airline tweets for "
        "airline-sentiment, home-assistant-intents utterances for home-intent).")
    p.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    p.add_argument("--model", default="airline-sentiment")
    p.add_argument("--version", default=None,
                   help="serve this version folder on every target (e.g. 2, the airline "
                   "teacher int8; see the model's MODEL_CARD.md): naive and ceiling load it, "
                   "Sluice serves an overlay repository whose policy names only it, and "
                   "--protocol infer posts to /v2/models/{m}/versions/{v}/infer")
    p.add_argument("--targets", type=_csv(str, TARGETS), default=list(TARGETS),
                   help="comma list of ceiling,naive,sluice (default: all, in that order)")
    p.add_argument("--variants", type=_csv(str, VARIANTS), default=["default"],
                   help="Sluice variants, one target each: default (as configured), auth "
                   "(an API key, every request sending it), access-log (SLUICE_ACCESS_LOG=true, "
                   "--log-level info), no-access-log (SLUICE_ACCESS_LOG=false: the server's "
                   "default has the access log on, so this variant gives its cost), fixed-cut (no cost "
                   "model, the hand-tuned sub_batch_tokens 256 pinned: what the cost model buys), "
                   "one-instance / two-instances (the cost model's cut, the split pinned to 1 or 2 "
                   "instances: what the split choice buys); "
                   "the report "
                   "gives each one's ratio to default (default: default)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of the whole target set, interleaved (order reversed every "
                   "other round); points are medians with their spread (default 1)")
    p.add_argument("--targets-profile", choices=PROFILES, default="auto",
                   help="the verdict's targets: student (airline student over classify: "
                   ">= 0.85 of the best offline policy at saturation, >= 1.3x naive at c=8 and "
                   "c=32, >= 1.0x at c=1, p99 at c=32 <= 0.8x naive's), other (other models "
                   "or versions: >= 1.2x naive at c=32, and the saturation target), legacy "
                   "(the earlier targets), auto (default: student for airline-sentiment at its "
                   "served version over classify, else other)")
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
                   help="intra-op threads for every server target, and the cores the ceiling "
                   "splits into instances x threads (0: the server's cores)")
    p.add_argument("--ceiling-splits", type=_csv(str), default=None,
                   help="only these instance x thread splits offline, e.g. 2x1 (default: all)")
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


def cpu_list(spec: str) -> set[int]:
    """``0-1,3`` -> {0, 1, 3}."""
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def run_meta(args: argparse.Namespace, argv: list[str] | None, threads: int, texts: int,
             profile: str) -> dict[str, Any]:
    """The report's description of this run (what was measured, how, where)."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_line(),
        "commit": git_commit(),
        "command": "python -m loadtests.bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "model": args.model,
        "model_version": args.version or "?",
        "threads": threads,
        "protocol": args.protocol,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "repeat": args.repeat,
        "variants": args.variants,
        "profile": profile,
        "pinning": (f"servers on CPUs {args.server_cpus}, generator on {args.generator_cpus}"
                    if args.server_cpus or args.generator_cpus
                    else "none (server and generator share all cores)"),
        "texts": texts,
    }
