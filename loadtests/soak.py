"""Soak: a real ``sluice serve`` under mixed valid, invalid and slow clients, with model reloads.

    python -m loadtests.soak --model-repository model_repository --model airline-sentiment
    python -m loadtests.soak --tiny --duration 300          # the tiny test model (needs [build])

Workers loop until ``--duration`` passes, each request drawn from a weighted mix: v2 JSON, v2
binary through ``tritonclient``, classify, malformed JSON, a wrong datatype, too many texts
(413), a body over ``max_request_bytes`` (413), and a slow client that trickles its request a
few bytes at a time. A reload thread posts ``/v2/repository/models/{m}/load`` every
``--reload-every`` seconds (``--admin-key`` and ``--server-arg`` pass the model-control flags
through, e.g. ``--server-arg=--model-control-mode=explicit``). ``--fault-hook module:function``
is called once a second with the server URL (an engine fault injector can flip faults there).

It prints a table and writes a JSON report: requests sent and answered per kind, statuses,
failures by reason, p50/p99 and the server's RSS (``VmRSS``) after warm-up and at the end.
Criteria: nothing lost (every request sent got an HTTP answer, none a 500) and RSS growth < 10%.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadtests import servers
from loadtests.soak_clients import binary_request, http_request, slow_request
from loadtests.stats import percentile

#: kind -> weight in the mix
MIX = {"v2_json": 30, "v2_binary": 20, "classify": 30, "bad_json": 5, "bad_datatype": 5,
       "too_many_texts": 5, "oversized": 1, "slow_client": 4}
#: the overall p50/p99: valid requests from ordinary clients (a slow client takes ~1 s by design)
LATENCY_KINDS = {"v2_json", "v2_binary", "classify"}


@dataclass
class SoakConfig:
    """Everything a soak needs. The server runs with ``--model-control-mode explicit`` and
    ``admin_key`` as its admin key, so the reloads go through the admin-key check."""

    repository: Path
    model: str
    duration_s: float = 300.0
    workers: int = 8
    reload_every_s: float = 20.0
    """0: no reloads."""
    warmup_s: float = 20.0
    """The mix (and reloads) runs this long before the starting RSS is read."""
    admin_key: str | None = "soak-admin-key"
    server_args: Sequence[str] = ()
    fault_hook: Callable[[str], None] | None = None
    max_request_bytes: int = 8 * 1024 * 1024
    request_timeout_s: float = 30.0
    seed: int = 0


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "kind status"
    failures: Counter[str] = field(default_factory=Counter)  # "kind reason"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, status: int | None, seconds: float, reason: str = "") -> None:
        with self.lock:
            self.sent[kind] += 1
            if status is None:
                self.failures[f"{kind} {reason}"] += 1
                return
            self.answered[kind] += 1
            self.statuses[f"{kind} {status}"] += 1
            if status >= 500 and status not in (503, 504):
                self.failures[f"{kind} HTTP {status}"] += 1
            self.latencies.setdefault(kind, []).append(seconds)


def rss_kib(pid: int) -> int:
    """The process's resident set (``VmRSS`` of /proc/<pid>/status), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---- threads -------------------------------------------------------------------------------
def _worker(url: str, cfg: SoakConfig, tally: Tally, stop: threading.Event, seed: int) -> None:
    import tritonclient.http as th

    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    triton = th.InferenceServerClient(url.removeprefix("http://"),
                                      network_timeout=cfg.request_timeout_s)
    with httpx.Client(base_url=url, timeout=cfg.request_timeout_s) as client:
        while not stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            start = time.perf_counter()
            try:
                if kind == "v2_binary":
                    status = binary_request(triton, cfg, rng)
                elif kind == "slow_client":
                    status = slow_request(url, cfg, rng)
                else:
                    status = http_request(client, cfg, kind, rng)
            except Exception as e:  # a lost request: the reason is what the report counts
                tally.record(kind, None, 0.0, type(e).__name__)
                continue
            tally.record(kind, status, time.perf_counter() - start)
    triton.close()


def _reloader(url: str, cfg: SoakConfig, tally: Tally, stop: threading.Event,
              every_s: float) -> None:
    headers = {"Authorization": f"Bearer {cfg.admin_key}"} if cfg.admin_key else {}
    with httpx.Client(base_url=url, timeout=120.0, headers=headers) as client:
        while not stop.wait(every_s):
            start = time.perf_counter()
            try:
                status = client.post(f"/v2/repository/models/{cfg.model}/load").status_code
            except Exception as e:
                tally.record("reload", None, 0.0, type(e).__name__)
                continue
            tally.record("reload", status, time.perf_counter() - start)
            if status != 200 and status < 500:
                tally.failures[f"reload HTTP {status}"] += 1


def _faults(url: str, cfg: SoakConfig, stop: threading.Event) -> None:
    assert cfg.fault_hook is not None
    while not stop.wait(1.0):
        cfg.fault_hook(url)


# ---- the run -------------------------------------------------------------------------------
def _phase(url: str, cfg: SoakConfig, tally: Tally, seconds: float, *, reload_every_s: float,
           on_tick: Callable[[float], None] | None = None) -> int:
    """Run the mix for ``seconds``; the number of threads still hung afterwards."""
    stop = threading.Event()
    threads = [threading.Thread(target=_worker, args=(url, cfg, tally, stop, cfg.seed + i),
                                daemon=True) for i in range(cfg.workers)]
    if reload_every_s > 0:
        threads.append(threading.Thread(target=_reloader, daemon=True,
                                        args=(url, cfg, tally, stop, reload_every_s)))
    if cfg.fault_hook is not None:
        threads.append(threading.Thread(target=_faults, args=(url, cfg, stop), daemon=True))
    began = time.monotonic()
    for t in threads:
        t.start()
    while (elapsed := time.monotonic() - began) < seconds:
        time.sleep(min(5.0, max(0.1, seconds - elapsed)))
        if on_tick is not None:
            on_tick(time.monotonic() - began)
    stop.set()
    for t in threads:
        t.join(timeout=cfg.request_timeout_s + 130)
    return sum(t.is_alive() for t in threads)


def run(cfg: SoakConfig) -> dict[str, Any]:
    port = servers.free_port()
    env = servers.thread_env(1)
    args = servers.with_model_control(cfg.server_args, env, cfg.admin_key)
    command = servers.sluice_command(cfg.repository, cfg.model, port, args)
    with servers.serve("soak", command, port, env) as server:
        pid = server.process.pid
        # every path, every batch size and one reload before the starting RSS
        _phase(server.url, cfg, Tally(), cfg.warmup_s, reload_every_s=cfg.warmup_s / 2)
        rss_start = rss_kib(pid)
        tally, rss_samples = Tally(), []
        began = time.monotonic()
        hung = _phase(server.url, cfg, tally, cfg.duration_s, reload_every_s=cfg.reload_every_s,
                      on_tick=lambda t: rss_samples.append((round(t, 1), rss_kib(pid))))
        rss_end = rss_kib(pid)
        alive = server.process.poll() is None
    return report(cfg, tally, rss_start, rss_end, rss_samples, hung, alive,
                  time.monotonic() - began)


def report(cfg: SoakConfig, tally: Tally, rss_start: int, rss_end: int,
           samples: list[tuple[float, int]], hung: int, alive: bool,
           elapsed: float) -> dict[str, Any]:
    kinds = {}
    for kind in sorted(tally.sent):
        lat = sorted(tally.latencies.get(kind, []))
        kinds[kind] = {
            "sent": tally.sent[kind], "answered": tally.answered[kind],
            "statuses": {k.split()[1]: v for k, v in sorted(tally.statuses.items())
                         if k.split()[0] == kind},
            "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
            "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
        }
    sent, answered = sum(tally.sent.values()), sum(tally.answered.values())
    growth = (rss_end - rss_start) / rss_start
    valid = sorted(x for k in LATENCY_KINDS for x in tally.latencies.get(k, []))
    return {
        "duration_s": round(elapsed, 1), "workers": cfg.workers, "model": cfg.model,
        "sent": sent, "answered": answered, "failed": dict(tally.failures),
        "p50_ms": round(percentile(valid, 50) * 1000, 1) if valid else None,
        "p99_ms": round(percentile(valid, 99) * 1000, 1) if valid else None,
        "kinds": kinds, "rss_start_kib": rss_start, "rss_end_kib": rss_end,
        "rss_growth": round(growth, 4), "rss_samples_kib": samples,
        "hung_threads": hung, "server_alive": alive,
        "passed": {"nothing_lost": sent == answered and not tally.failures and hung == 0,
                   "rss_growth_below_10pct": growth < 0.10, "server_alive": alive},
    }


def table(doc: dict[str, Any]) -> str:
    rows = [f"{'kind':<16}{'sent':>8}{'answered':>10}{'p50 ms':>9}{'p99 ms':>9}  statuses"]
    for kind, k in doc["kinds"].items():
        rows.append(f"{kind:<16}{k['sent']:>8}{k['answered']:>10}{k['p50_ms'] or '-':>9}"
                    f"{k['p99_ms'] or '-':>9}  {k['statuses']}")
    rows.append(f"{'total (p: valid)':<16}{doc['sent']:>8}{doc['answered']:>10}{doc['p50_ms'] or '-':>9}"
                f"{doc['p99_ms'] or '-':>9}  failed: {doc['failed'] or 'none'}")
    rows.append(f"RSS {doc['rss_start_kib'] / 1024:.1f} MiB after warm-up -> "
                f"{doc['rss_end_kib'] / 1024:.1f} MiB at the end ({doc['rss_growth']:+.1%}); "
                f"{doc['duration_s']} s, {doc['workers']} workers; passed: {doc['passed']}")
    return "\n".join(rows)


def _hook(spec: str) -> Callable[[str], None]:
    module, _, name = spec.partition(":")
    hook: Callable[[str], None] = getattr(importlib.import_module(module), name)
    return hook


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-repository", type=Path)
    p.add_argument("--model", default="tiny-sentiment")
    p.add_argument("--tiny", action="store_true", help="serve the tiny test model (built now)")
    p.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--reload-every", type=float, default=20.0, help="seconds; 0: no reloads")
    p.add_argument("--warmup", type=float, default=20.0, help="seconds of the mix before "
                   "the starting RSS is read (default 20)")
    p.add_argument("--admin-key", default="soak-admin-key",
                   help="the server's admin key, sent as Bearer with each reload")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra sluice serve argument, repeatable (--server-arg=--flag=value)")
    p.add_argument("--fault-hook", default=None, help="module:function called each second")
    p.add_argument("--report", type=Path, default=Path("soak-report.json"))
    args = p.parse_args(argv)
    repository = args.model_repository
    if args.tiny or repository is None:
        from tests.support.tiny_model import make_tiny_repository

        repository = make_tiny_repository(Path(tempfile.mkdtemp(prefix="sluice-soak-")))
    cfg = SoakConfig(repository=repository, model=args.model, duration_s=args.duration,
                     workers=args.workers, reload_every_s=args.reload_every, warmup_s=args.warmup,
                     admin_key=args.admin_key, server_args=args.server_arg,
                     fault_hook=_hook(args.fault_hook) if args.fault_hook else None)
    doc = run(cfg)
    print(table(doc))
    args.report.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"report: {args.report}")
    return 0 if all(doc["passed"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
