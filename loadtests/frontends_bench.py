"""``sluice serve --frontends 0/1/2...`` side by side: req/s and CPU µs per request in each process.

For each repository (the null engine: right-shaped zeros at once, so the server's own work is
all there is; and a real model) and each front-end count, one ``sluice serve`` runs under the
same closed-loop load (``loadtests.loadgen``), and the CPU time of each of its processes over
the measurement window (``/proc/<pid>/stat``) is divided by the requests answered in it.

    python -m loadtests.frontends_bench --frontends 0,1,2 --default-repo /work/benchrepo \\
        --model airline-sentiment --concurrency 16 --duration 5

Prints a table and writes ``loadtests/reports/frontends/frontends.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtests.loadgen import RawRun, closed_loop
from loadtests.null_engine import BACKEND
from loadtests.workload import Workload

TEXTS = [
    "@united lost my bag again, thanks for nothing",
    "@JetBlue great crew, smooth flight!",
    "@SouthwestAir is flight 123 on time?",
    "two hour delay and no announcement at all",
    "the upgrade was a lovely surprise, thank you",
    "can I change my seat online?",
]
TICK = os.sysconf("SC_CLK_TCK")
NULL_MODEL = "null-text"


@dataclass
class Row:
    repository: str
    frontends: int
    requests_per_s: float
    p50_ms: float
    errors: int
    engine_us: float
    """CPU µs per request of the engine process (the only process with --frontends 0)."""
    frontend_us: float
    """CPU µs per request of the front ends together (0 with --frontends 0)."""
    supervisor_us: float


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def null_repository(root: Path, source: Path | None) -> Path:
    """A text model served by the null engine, with ``source``'s tokenizer (a model folder;
    None: the tiny test model's), large batches and a long queue."""
    import yaml

    if source is None:
        from tests.support.tiny_model import make_tiny_repository

        source = make_tiny_repository(root / "tiny") / "tiny-sentiment"
    versions = sorted((d for d in source.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    config = yaml.safe_load((source / "config.yaml").read_text())
    folder = root / "null-repo" / NULL_MODEL
    (folder / "1").mkdir(parents=True)
    for f in versions[-1].iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special_tokens")):
            shutil.copy(f, folder / "1" / f.name)
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "task": "text-classification", "labels": config["labels"],
        "max_length": config.get("max_length", 64),
        "engine": {"backend": BACKEND,
                   "options": {"outputs": {"logits": [len(config["labels"])]}}},
        "batching": {"max_batch_size": 64, "max_queue_delay_us": 500, "max_queue_size": 8192},
    }))
    return folder.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, repo: Path, model: str, frontends: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {**os.environ, "SLUICE_ENGINE_PLUGINS": "loadtests", "SLUICE_ACCESS_LOG": "false",
               "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--model-repository", str(repo),
             "--models", model, "--no-build", "--port", str(self.port), "--frontends",
             str(frontends), "--shutdown-delay-s", "0"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        self.frontends = frontends
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"not ready in {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def pids(self) -> dict[str, list[int]]:
        """Each process's role: supervisor, engine, front end."""
        if self.frontends == 0:
            return {"engine": [self.process.pid], "frontend": [], "supervisor": []}
        text = self.log.read_text()
        started = dict(re.findall(r"(engine process|front end \d+) started: pid (\d+)", text))
        return {"engine": [int(started["engine process"])],
                "frontend": [int(p) for n, p in started.items() if n.startswith("front end")],
                "supervisor": [self.process.pid]}

    def stop(self) -> None:
        self.process.send_signal(2)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _client(url: str, model: str, shape: str, concurrency: int, duration: float, warmup: float,
            pids: dict[str, list[int]] | None) -> tuple[RawRun, dict[str, float], dict[str, float]]:
    """One load-generator process; the first also reads the server's CPU times at the edges of
    its window."""
    before: dict[str, float] = {}
    after: dict[str, float] = {}

    async def start() -> None:
        if pids is not None:
            before.update({role: sum(cpu_s(p) for p in ps) for role, ps in pids.items()})

    async def end() -> None:
        if pids is not None:
            after.update({role: sum(cpu_s(p) for p in ps) for role, ps in pids.items()})

    run = asyncio.run(closed_loop(url, Workload(model, shape, TEXTS), concurrency, duration,
                                  warmup_s=warmup, on_start=start, on_end=end))
    return run, before, after


def measure(repo: Path, model: str, frontends: int, args: argparse.Namespace,
            out: Path) -> Row:
    server = Server(repo, model, frontends, out / f"server-{repo.name}-{frontends}.log")
    try:
        server.wait_ready()
        pids = server.pids()
        share = max(1, args.concurrency // args.clients)
        with ProcessPoolExecutor(args.clients, mp_context=mp.get_context("spawn")) as pool:
            runs = [pool.submit(_client, server.url, model, args.shape, share, args.duration,
                                args.warmup, pids if i == 0 else None)
                    for i in range(args.clients)]
            results = [r.result() for r in runs]
    finally:
        server.stop()
    before, after = results[0][1], results[0][2]
    requests = sum(r.requests for r, _, _ in results)
    n = max(1, requests)

    def per_request(role: str) -> float:
        return (after[role] - before[role]) / n * 1e6

    latencies = sorted(t for r, _, _ in results for t in r.latencies_s)
    run = results[0][0]
    run.errors = sum((r.errors for r, _, _ in results), run.errors.__class__())
    return Row(repo.name if model != NULL_MODEL else "null engine", frontends,
               requests / run.window_s, latencies[len(latencies) // 2] * 1e3 if latencies else 0,
               sum(run.errors.values()), per_request("engine"), per_request("frontend"),
               per_request("supervisor"))


def table(rows: list[Row]) -> str:
    lines = [f"{'repository':14} {'frontends':>9} {'req/s':>8} {'p50 ms':>7} {'errors':>6} "
             f"{'engine µs/req':>13} {'front ends µs/req':>17} {'vs 0':>6}"]
    base = {r.repository: r.requests_per_s for r in rows if r.frontends == 0}
    for r in rows:
        ratio = r.requests_per_s / base[r.repository] if base.get(r.repository) else 0.0
        lines.append(f"{r.repository:14} {r.frontends:>9} {r.requests_per_s:>8.0f} "
                     f"{r.p50_ms:>7.2f} {r.errors:>6} {r.engine_us:>13.0f} "
                     f"{r.frontend_us:>17.0f} {ratio:>5.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="frontends_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frontends", default="0,1,2")
    p.add_argument("--default-repo", type=Path, default=None,
                   help="also measure this repository's --model (e.g. /work/benchrepo)")
    p.add_argument("--model", default="airline-sentiment")
    p.add_argument("--no-null", action="store_true", help="skip the null-engine matrix")
    p.add_argument("--concurrency", type=int, default=16, help="connections in all")
    p.add_argument("--clients", type=int, default=1,
                   help="load-generator processes sharing the connections (one Python "
                   "generator tops out near 10k req/s: use several for 4+ front ends)")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--shape", default="chat", choices=["chat", "batch"])
    p.add_argument("--out", type=Path, default=Path("loadtests/reports/frontends"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    counts = [int(n) for n in args.frontends.split(",")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="frontends-bench-") as tmp:
        targets: list[tuple[Path, str]] = []
        if not args.no_null:
            source = args.default_repo / args.model if args.default_repo else None
            targets.append((null_repository(Path(tmp), source), NULL_MODEL))
        if args.default_repo is not None:
            targets.append((args.default_repo, args.model))
        for repo, model in targets:
            for n in counts:  # side by side: the same load, one server at a time
                rows.append(measure(repo, model, n, args, args.out))
                print(table(rows).splitlines()[-1], flush=True)  # its ratio to 0 as well
    print(f"\nclosed loop, {args.concurrency} connections from {args.clients} process(es), "
          f"{args.shape} requests, "
          f"{args.duration:.0f} s window, {os.cpu_count()} CPUs")
    print(table(rows))
    (args.out / "frontends.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
