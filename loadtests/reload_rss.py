"""Does loading and unloading a model leak memory? RSS of a real server over N cycles.

    python -m loadtests.reload_rss --model-repository model_repository --model airline-sentiment
    python -m loadtests.reload_rss --tiny                      # the tiny test model

What one load adds: the warmed server's RSS with the model loaded minus the RSS of the same
server started on an empty repository. Then ``--cycles`` times: unload, read RSS, load, send a
few requests, read RSS. Target: the RSS after the last cycle exceeds the RSS before the first
by less than 10% of what one load adds. ``--server-arg``/``--admin-key`` pass model-control
flags through (``--server-arg=--model-control-mode=explicit``); ``--env K=V`` sets server
environment variables (e.g. ``MALLOC_ARENA_MAX=2`` to test an allocator explanation).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from loadtests import servers
from loadtests.soak import rss_kib

TEXTS = ["my flight was cancelled again", "thanks for the upgrade!", "where is my bag"]


def _warm(client: httpx.Client, model: str | None, requests: int = 20) -> None:
    for i in range(requests):
        if model is None:
            client.get("/v2/health/live").raise_for_status()
            continue
        texts = TEXTS[: 1 + i % len(TEXTS)]
        r = client.post(f"/v1/models/{model}/classify", json={"inputs": texts})
        r.raise_for_status()


def _empty_server_rss(args: Sequence[str], env: Mapping[str, str]) -> int:
    """RSS of a server on an empty repository (live, never ready: it serves no model)."""
    with tempfile.TemporaryDirectory(prefix="sluice-empty-repo-") as empty:
        port = servers.free_port()
        command = servers.sluice_command(Path(empty), "none", port, args)
        i = command.index("--models")
        del command[i : i + 2]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                   env=dict(env), cwd=servers.REPO_ROOT, start_new_session=True)
        server = servers.RunningServer("empty", f"http://127.0.0.1:{port}", process, Path(empty))
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if servers.http_get(server.url + "/v2/health/live")[0] == 200:
                        break
                time.sleep(0.2)
            with httpx.Client(base_url=server.url, timeout=60) as client:
                _warm(client, None)
            time.sleep(1.0)  # the background load of nothing has finished
            return rss_kib(process.pid)
        finally:
            servers.stop(server)


def measure(repository: Path, model: str, cycles: int = 20, server_args: Sequence[str] = (),
            admin_key: str | None = "rss-admin-key", env: Mapping[str, str] | None = None,
            requests_per_cycle: int = 5) -> dict[str, Any]:
    """The server runs with ``--model-control-mode explicit`` and ``admin_key`` (load and unload
    need both)."""
    full_env = servers.thread_env(1, None)
    full_env.update(env or {})
    server_args = servers.with_model_control(server_args, full_env, admin_key)
    empty_rss = _empty_server_rss(server_args, full_env)
    port = servers.free_port()
    command = servers.sluice_command(repository, model, port, server_args)
    headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
    rows: list[dict[str, int]] = []
    with servers.serve("rss", command, port, full_env) as server, \
            httpx.Client(base_url=server.url, timeout=300, headers=headers) as client:
        pid = server.process.pid
        _warm(client, model)
        loaded_rss = rss_kib(pid)
        for i in range(1, cycles + 1):
            client.post(f"/v2/repository/models/{model}/unload").raise_for_status()
            unloaded = rss_kib(pid)
            client.post(f"/v2/repository/models/{model}/load").raise_for_status()
            _warm(client, model, requests_per_cycle)
            rows.append({"cycle": i, "unloaded_kib": unloaded, "loaded_kib": rss_kib(pid)})
    one_load = loaded_rss - empty_rss
    growth = rows[-1]["loaded_kib"] - loaded_rss
    steady = rows[-1]["loaded_kib"] - rows[0]["loaded_kib"]  # after the first reload's step
    return {
        "model": model, "cycles": cycles, "env": dict(env or {}),
        "empty_server_kib": empty_rss, "loaded_kib": loaded_rss, "one_load_kib": one_load,
        "growth_kib": growth, "growth_of_one_load": round(growth / one_load, 4) if one_load else None,
        "steady_growth_kib": steady,
        # like for like: what stays after an unload, first cycle against the last (a leak shows
        # here; the loaded figures also carry the allocator's request-time noise)
        "unloaded_growth_kib": rows[-1]["unloaded_kib"] - rows[0]["unloaded_kib"],
        "steady_growth_of_one_load": round(steady / one_load, 4) if one_load else None,
        "passed": one_load > 0 and growth < 0.10 * one_load, "rows": rows,
    }


def table(doc: dict[str, Any]) -> str:
    lines = [f"{'cycle':>5}{'unloaded MiB':>14}{'loaded MiB':>12}"]
    for r in doc["rows"]:
        lines.append(f"{r['cycle']:>5}{r['unloaded_kib'] / 1024:>14.1f}{r['loaded_kib'] / 1024:>12.1f}")
    lines.append(
        f"{doc['model']}: empty server {doc['empty_server_kib'] / 1024:.1f} MiB, loaded "
        f"{doc['loaded_kib'] / 1024:.1f} MiB, one load adds {doc['one_load_kib'] / 1024:.1f} MiB; "
        f"after {doc['cycles']} cycles {doc['growth_kib'] / 1024:+.1f} MiB = "
        f"{doc['growth_of_one_load']:.1%} of one load (target < 10%): "
        f"{'PASS' if doc['passed'] else 'FAIL'}; from cycle 1 to {doc['cycles']} "
        f"{doc['steady_growth_kib'] / 1024:+.1f} MiB = {doc['steady_growth_of_one_load']:.1%}; "
        f"after an unload, cycle 1 to {doc['cycles']}: "
        f"{doc['unloaded_growth_kib'] / 1024:+.1f} MiB = "
        f"{doc['unloaded_growth_kib'] / max(doc['one_load_kib'], 1):.1%} of one load"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-repository", type=Path)
    p.add_argument("--model", default="tiny-sentiment")
    p.add_argument("--tiny", action="store_true", help="serve the tiny test model (built now)")
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--admin-key", default="rss-admin-key",
                   help="the server's admin key, sent with each load and unload")
    p.add_argument("--server-arg", action="append", default=[])
    p.add_argument("--requests-per-cycle", type=int, default=5,
                   help="classify requests after each load (default 5)")
    p.add_argument("--env", action="append", default=[], help="K=V for the server, repeatable")
    p.add_argument("--report", type=Path, default=Path("reload-rss-report.json"))
    args = p.parse_args(argv)
    repository = args.model_repository
    if args.tiny or repository is None:
        from tests.support.tiny_model import make_tiny_repository

        repository = make_tiny_repository(Path(tempfile.mkdtemp(prefix="sluice-rss-")))
    env = dict(kv.split("=", 1) for kv in args.env)
    doc = measure(repository, args.model, args.cycles, args.server_arg, args.admin_key, env,
                  args.requests_per_cycle)
    print(table(doc))
    args.report.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"report: {args.report}")
    return 0 if doc["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
