"""``python -m loadtests.key_cost``: what the access guard (keys, Host, Content-Type) costs per request.

The same small route is called straight through ASGI (no network, no client) four ways: bare;
behind :class:`server.api.guard.Guard` with nothing configured (no keys, any Host); with keys on
(3 API keys and 1 admin key from a key folder, a Host allow-list, a JSON POST with a right
``Authorization: Bearer``); and with a wrong key (the 401 path). Rounds are interleaved and the
loop thread's CPU time is measured (``time.thread_time``); the median round of each is reported
in microseconds per request, with the guard's own cost (each variant minus bare), and the
fastest round of each too (the least disturbed by other processes). Prints a
table and writes a JSON report (``--out``). The issue's budget: keys on cost <= 5 us/request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message

from server.api.guard import Guard, GuardPolicy
from server.keys import KeySet

VARIANTS = ("bare", "guard_open", "keys_on", "wrong_key")
BUDGET_US = 5.0
DEFAULT_OUT = Path("loadtests/reports/key_cost.json")
API_KEY = "k" * 40
_BODY = orjson.dumps({"model_name": "m", "outputs": [{"name": "label", "data": ["positive"]}]})


async def _endpoint(request: Request) -> Response:
    return Response(_BODY, media_type="application/json")


def _apps(key_folder: Path) -> dict[str, ASGIApp]:
    router = Router(routes=[Route("/v2/models/{model}/infer", _endpoint, methods=["POST"])])
    for i, key in enumerate((API_KEY, "second-" + "x" * 33, "third-" + "y" * 34)):
        (key_folder / f"client-{i}").write_text(key + "\n")
    keys_on = GuardPolicy(api_keys=KeySet(folder=key_folder), admin_keys=KeySet(["a" * 40]),
                          control_mode="explicit", allowed_hosts=("127.0.0.1", "sluice.example"))
    guarded = Guard(router, keys_on)
    return {
        "bare": router,
        "guard_open": Guard(router, GuardPolicy(api_keys=KeySet(), admin_keys=KeySet())),
        "keys_on": guarded,
        "wrong_key": guarded,
    }


def _scope(key: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v2/models/m/infer", "raw_path": b"/v2/models/m/infer",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", b"2"), (b"user-agent", b"key-cost"),
                    (b"authorization", f"Bearer {key}".encode())],
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


class _Statuses:
    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.seen[message["status"]] = self.seen.get(message["status"], 0) + 1


async def _round(app: ASGIApp, requests: int, key: str, send: _Statuses) -> float:
    started = time.thread_time()
    for _ in range(requests):
        await app(_scope(key), _receive, send)
    return (time.thread_time() - started) / requests * 1e6


Figures = dict[str, float]


async def measure(
    requests: int, rounds: int
) -> tuple[Figures, Figures, dict[str, dict[int, int]]]:
    """Median and fastest-round CPU microseconds per request of each variant, and the statuses
    each answered."""
    keys = {v: ("wrong-" + "z" * 34 if v == "wrong_key" else API_KEY) for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="sluice-keys-") as folder:
        apps = _apps(Path(folder))
        statuses = {v: _Statuses() for v in VARIANTS}
        for v in VARIANTS:  # warm up every path once
            await _round(apps[v], min(requests, 200), keys[v], _Statuses())
        figures: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for v in VARIANTS:
                figures[v].append(await _round(apps[v], requests, keys[v], statuses[v]))
    return ({v: statistics.median(f) for v, f in figures.items()},
            {v: min(f) for v, f in figures.items()}, {v: s.seen for v, s in statuses.items()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=5000, help="requests per round and variant")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    args = p.parse_args(argv)
    figures, best, statuses = asyncio.run(measure(args.requests, args.rounds))
    print(f"{'variant':12} {'us/request':>10} {'guard cost':>10} {'best round':>10} "
          f"{'best cost':>10}  statuses")
    for v, us in figures.items():
        extra, fast = us - figures["bare"], best[v] - best["bare"]
        print(f"{v:12} {us:10.2f} {extra:10.2f} {best[v]:10.2f} {fast:10.2f}  "
              f"{dict(sorted(statuses[v].items()))}")
    cost = figures["keys_on"] - figures["bare"]
    verdict = "within" if cost <= BUDGET_US else "OVER"
    print(f"keys on cost {cost:.2f} us/request: {verdict} the {BUDGET_US:.0f} us budget")
    report = {
        "script": "loadtests/key_cost.py", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
        "requests": args.requests * args.rounds,
        **{f"{v}_us": round(us, 3) for v, us in figures.items()},
        "keys_on_cost_us": round(cost, 3),
        "guard_open_cost_us": round(figures["guard_open"] - figures["bare"], 3),
        "best_round_us": {v: round(us, 3) for v, us in best.items()},
        "best_round_keys_on_cost_us": round(best["keys_on"] - best["bare"], 3),
        "budget_us": BUDGET_US, "within_budget": cost <= BUDGET_US,
        "statuses": {v: {str(k): n for k, n in s.items()} for v, s in statuses.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
