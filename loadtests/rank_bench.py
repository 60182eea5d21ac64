"""/rank and binary v2 on movie-ranker: latency at concurrency 1 and per-candidate overhead at
saturation beyond the engine's offline ceiling on the same candidate lists.

    python -m loadtests.rank_bench --repository model_repository [--url http://127.0.0.1:8000]

Without ``--url`` a ``sluice serve`` of the repository's movie-ranker is started on loopback,
once per variant (``--variants``):

- ``shared``: server and load client share every CPU (as a one-box deployment would);
- ``pinned``: the server on CPU 0 alone (so it derives one intra-op thread, and its offline
  ceiling is measured there with one thread too), the load client on the other CPUs, so the
  client's CPU no longer competes with the server's.

The offline ceiling runs the engine with the model's own ``engine`` settings (threads,
options such as ``allow_spinning``). Prints a table and writes ``loadtests/reports/rank_bench.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

MODEL = "movie-ranker"


def _lists(n_lists: int, size: int, n_items: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [rng.choice(np.arange(1, n_items), size=size, replace=False).tolist() for _ in range(n_lists)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(cpus: set[int], pid: int = 0) -> None:
    """Restrict every thread of process ``pid`` (0: this one) to ``cpus`` (threads started
    later inherit it; so do child processes)."""
    tids = os.listdir(f"/proc/{pid or os.getpid()}/task")
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def offline_us_per_candidate(
    version_dir: Path, lists: list[list[int]], threads: int = 0
) -> tuple[float, float]:
    """The engine's own ceiling: features gathered and scored in-process, no HTTP, no queue.
    Wall and CPU (this process, the engine's threads included) microseconds per candidate.
    The engine runs with the model's config (``threads``: 0 derives it as the server does)."""
    from engines.base import EngineSpec
    from engines.onnx_engine import load
    from server.cpus import available_cpus
    from server.inference.ranking import RankingTables
    from server.repository.config import load_model_config

    engine_cfg = load_model_config(version_dir.parent / "config.yaml").engine
    threads = threads or engine_cfg.threads or available_cpus()
    tables = RankingTables.load(version_dir)
    engine = load(EngineSpec(artifact=version_dir / "model.onnx", threads=threads,
                             options=engine_cfg.options))  # fmt: skip
    feeds = [tables.gather(196, x) for x in lists]
    engine.run(feeds[0])
    started, cpu = time.perf_counter(), time.process_time()
    for f in feeds:
        engine.run(f)
    n = sum(len(x) for x in lists)
    return 1e6 * (time.perf_counter() - started) / n, 1e6 * (time.process_time() - cpu) / n


def rank_c1_ms(url: str, lists: list[list[int]]) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i, items in enumerate(lists):
            started = time.perf_counter()
            r = c.post(f"/v1/models/{MODEL}/rank", json={"user_id": 196, "item_ids": items})
            r.raise_for_status()
            if i >= 5:
                times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def _saturate(
    call: object, lists: list[list[int]], workers: int, seconds: float
) -> tuple[float, int]:
    """Candidates per second, and candidates scored, with ``workers`` threads each looping
    ``call(items)``."""
    stop = time.perf_counter() + seconds
    done = [0] * workers

    def loop(w: int) -> None:
        i = w
        while time.perf_counter() < stop:
            items = lists[i % len(lists)]
            call(items)  # type: ignore[operator]
            done[w] += len(items)
            i += workers

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(loop, range(workers)))
    return sum(done) / (time.perf_counter() - started), sum(done)


def rank_saturated(
    url: str, lists: list[list[int]], workers: int, seconds: float
) -> tuple[float, int]:
    local = threading.local()

    def call(items: list[int]) -> None:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=url, timeout=30)
        local.c.post(f"/v1/models/{MODEL}/rank", json={"user_id": 196, "item_ids": items}).raise_for_status()

    return _saturate(call, lists, workers, seconds)


def v2_saturated(
    url: str, version_dir: Path, lists: list[list[int]], workers: int, seconds: float
) -> tuple[float, int]:
    import tritonclient.http as triton

    from server.inference.ranking import RankingTables

    tables = RankingTables.load(version_dir)
    host = url.split("://", 1)[-1]
    local = threading.local()

    def call(items: list[int]) -> None:
        if not hasattr(local, "c"):
            local.c = triton.InferenceServerClient(url=host)
        inputs = []
        for name, arr in tables.gather(196, items).items():
            inp = triton.InferInput(name, list(arr.shape), "FP32" if arr.dtype == np.float32 else "INT64")
            inp.set_data_from_numpy(arr, binary_data=True)
            inputs.append(inp)
        local.c.infer(MODEL, inputs, outputs=[triton.InferRequestedOutput("score", binary_data=True)])

    return _saturate(call, lists, workers, seconds)


def measure(
    args: argparse.Namespace, version_dir: Path, lists: list[list[int]], variant: str
) -> list[tuple[str, str, str]]:
    """One variant's rows (see the module)."""
    server = None
    url = args.url
    all_cpus = sorted(os.sched_getaffinity(0))
    pinned = variant == "pinned"
    if pinned and (url is not None or len(all_cpus) < 2):
        return [("pinned variant", "skipped: needs 2+ CPUs and a server started here", "-")]
    server_cpus, client_cpus = ({all_cpus[0]}, set(all_cpus[1:])) if pinned else (set(), set())
    try:
        if pinned:  # the ceiling and the server (inheriting it) on CPU 0: one thread each
            pin(server_cpus)
        ceiling, ceiling_cpu = offline_us_per_candidate(version_dir, lists)
        if url is None:
            from tests.support.server_process import start_server

            server = start_server(args.repository, extra_args=["--models", MODEL, "--shutdown-delay-s", "0"],
                                  cwd=args.server_tree)
            url = server.url
        if pinned:
            pin(client_cpus)
        c1 = rank_c1_ms(url, lists + lists[:6])
        pid = server.process.pid if server is not None else None
        cpu: dict[str, float] = {}
        cpu0, me0 = (cpu_seconds(pid) if pid else 0.0), time.process_time()
        rank_rate, rank_n = rank_saturated(url, lists, args.workers, args.seconds)
        cpu1, me1 = (cpu_seconds(pid) if pid else 0.0), time.process_time()
        v2_rate, v2_n = v2_saturated(url, version_dir, lists, args.workers, args.seconds)
        cpu2, me2 = (cpu_seconds(pid) if pid else 0.0), time.process_time()
        if pid:  # the server's own CPU per candidate: the load client's CPU left out
            cpu = {"rank": 1e6 * (cpu1 - cpu0) / rank_n, "v2": 1e6 * (cpu2 - cpu1) / v2_n}
        client = {"rank": 1e6 * (me1 - me0) / rank_n, "v2": 1e6 * (me2 - me1) / v2_n}
    finally:
        if server is not None:
            server.stop()
        if pinned:
            pin(set(all_cpus))
    where = (f"server on CPU {sorted(server_cpus)}, client on {sorted(client_cpus)}" if pinned
             else "server and client share the CPUs")
    rows = [
        (f"**{variant}** ({where})", "", ""),
        ("engine offline ceiling (in-process)", f"{ceiling:.3f} µs/candidate", "-"),
        (f"/rank {args.candidates} candidates, concurrency 1, median", f"{c1:.2f} ms", "< 20 ms"),
        (f"binary v2 at saturation ({args.workers} clients)",
         f"{1e6 / v2_rate:.3f} µs/candidate ({1e6 / v2_rate - ceiling:+.3f})", "+ < 1 µs"),
        (f"/rank JSON at saturation ({args.workers} clients)",
         f"{1e6 / rank_rate:.3f} µs/candidate ({1e6 / rank_rate - ceiling:+.3f})", "+ < 3 µs"),
    ]  # fmt: skip
    if cpu:
        rows += [
            ("engine offline ceiling, CPU", f"{ceiling_cpu:.3f} µs/candidate", "-"),
            ("server CPU at saturation, binary v2",
             f"{cpu['v2']:.3f} µs/candidate ({cpu['v2'] - ceiling_cpu:+.3f})", "+ < 1 µs"),
            ("server CPU at saturation, /rank JSON",
             f"{cpu['rank']:.3f} µs/candidate ({cpu['rank'] - ceiling_cpu:+.3f})", "+ < 3 µs"),
        ]  # fmt: skip
    rows += [("load client CPU, binary v2 / /rank JSON",
              f"{client['v2']:.3f} / {client['rank']:.3f} µs/candidate", "-")]
    return rows


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.rank_bench")
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--url", default=None)
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--variants", default="shared,pinned",
                   help="comma-separated: shared (client and server on every CPU), pinned")
    p.add_argument("--server-tree", type=Path, default=None,
                   help="serve from this source checkout instead (a before/after comparison: "
                        "git worktree add /tmp/rank-base main)")
    p.add_argument("--report", type=Path, default=Path("loadtests/reports/rank_bench.md"))
    args = p.parse_args()
    version_dir = args.repository / MODEL / "1"
    n_items = int(np.load(version_dir / "item_features.npy").shape[0])
    lists = _lists(64, args.candidates, n_items)
    rows: list[tuple[str, str, str]] = []
    for variant in args.variants.split(","):
        if variant not in ("shared", "pinned"):
            p.error(f"--variants: unknown variant {variant!r} (shared, pinned)")
        rows += measure(args, version_dir, lists, variant)
    table = ["| measurement | result | target |", "| --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(table)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(f"# movie-ranker: /rank and v2\n\n{text}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
