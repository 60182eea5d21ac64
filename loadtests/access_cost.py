"""``python -m loadtests.access_cost``: what the access middleware costs per request, in-process.

The same small route (a Starlette router with an ``/v2/models/{model}/infer`` route answering a
short JSON body) is called straight through ASGI, with no network and no client, three ways:
bare, behind :class:`server.api.access.AccessMiddleware` with the access log off, and with it on
(the real logger and handler, stdout redirected to a file). Rounds are interleaved and the CPU time of the
loop's thread is measured (``time.thread_time``), so other processes on the machine inflate the
figures little; the median round of each variant is reported as microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message

from server.api.access import AccessMiddleware, configure_access_logger
from server.metrics import Metrics

VARIANTS = ("bare", "log_off", "log_on")
_BODY = orjson.dumps({"model_name": "m", "outputs": [{"name": "label", "data": ["positive"]}]})


async def _endpoint(request: Request) -> Response:
    return Response(_BODY, media_type="application/json")


def _apps() -> dict[str, ASGIApp]:
    router = Router(routes=[Route("/v2/models/{model}/infer", _endpoint, methods=["POST"])])
    configure_access_logger()  # the real logger and handler: bare lines on (redirected) stdout
    return {
        "bare": router,
        "log_off": AccessMiddleware(router, metrics=Metrics(), access_log=False),
        "log_on": AccessMiddleware(router, metrics=Metrics(), access_log=True),
    }


def _scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v2/models/m/infer", "raw_path": b"/v2/models/m/infer",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", b"2"), (b"user-agent", b"access-cost")],
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(message: Message) -> None:
    pass


async def _round(app: ASGIApp, requests: int, scope: Callable[[], dict[str, Any]]) -> float:
    started = time.thread_time()
    for _ in range(requests):
        await app(scope(), _receive, _send)
    return (time.thread_time() - started) / requests * 1e6


async def measure(requests: int, rounds: int) -> tuple[dict[str, float], int]:
    """Median CPU microseconds per request of each variant, and the access lines written."""
    with tempfile.TemporaryFile("w+", prefix="sluice-access-") as log, \
            contextlib.redirect_stdout(log):
        apps = _apps()
        for app in apps.values():  # warm up every path once
            await _round(app, min(requests, 200), _scope)
        figures: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for variant in VARIANTS:
                figures[variant].append(await _round(apps[variant], requests, _scope))
        sys.stdout.flush()
        log.seek(0)
        lines = sum(1 for _ in log)
    return {v: statistics.median(f) for v, f in figures.items()}, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=5000, help="requests per round and variant")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    figures, lines = asyncio.run(measure(args.requests, args.rounds))
    for variant, us in figures.items():
        print(f"{variant:8} {us:7.2f} us/request CPU", file=sys.stderr)
    print(orjson.dumps({
        **{f"{v}_us": round(us, 2) for v, us in figures.items()},
        "middleware_us": round(figures["log_off"] - figures["bare"], 2),
        "access_log_us": round(figures["log_on"] - figures["log_off"], 2),
        "requests": args.requests * args.rounds, "lines_logged": lines,
    }).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
