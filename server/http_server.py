"""``sluice serve``'s HTTP server: uvicorn with a lame-duck shutdown, and /metrics on its own port.

uvicorn alone closes its listener within 0.1 s of SIGTERM and only then runs the app's shutdown,
so a load balancer that still routes to the process gets refused connections. ``SluiceServer``
replaces its signal handling and shutdown with ``server.lifecycle``'s sequence:

1. signal: readiness 503 at once; the listener stays open and every request is still served
   (lame duck, ``shutdown_delay_s``; skipped on SIGINT), with kept-alive connections closed;
2. drain: stop accepting, close idle connections, run the app's shutdown (it finishes what is
   queued and running within ``drain_timeout_s`` and closes the engines), let the answers be
   written (``WRITE_MARGIN_S``), exit 0. The whole fits in delay + drain + 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from server.http_protocol import ReadLimits, protocol_class
from server.lifecycle import WRITE_MARGIN_S, Action, ConnectionCloser, Lifecycle, Phase
from server.settings import Settings

log = logging.getLogger("sluice")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
CONNECTION_CLOSE = (b"connection", b"close")
METRICS_PATH = "/metrics"


def only_metrics(app: ASGIApp) -> ASGIApp:
    """``app`` restricted to ``GET /metrics``; any other path answers 404."""
    body = b'{"error": "this port serves only /metrics"}'

    async def metrics_only(
        scope: Scope, receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == METRICS_PATH:
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    return metrics_only


class MetricsListener:
    """/metrics on a second port, served by a second uvicorn server in the same event loop.

    The socket is bound when this is created, so a port in use fails before anything starts.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, log_level: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}{METRICS_PATH}"
        config = uvicorn.Config(
            only_metrics(app), lifespan="off", http="httptools", ws="none", log_config=None,
            log_level=log_level, access_log=False, timeout_graceful_shutdown=1,
        )
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        log.info("sluice metrics on %s", self.url)

    async def stop(self) -> None:
        await self.server.shutdown(sockets=[self.sock])


class SluiceServer(uvicorn.Server):
    """uvicorn's server with ``Lifecycle``'s signal handling and shutdown order."""

    def __init__(
        self,
        config: uvicorn.Config,
        lifecycle: Lifecycle,
        *,
        metrics: MetricsListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.metrics = metrics
        self._closer = ConnectionCloser(clock=clock)
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not uvicorn's: it closes the listener at once, and re-raises the signal after a
        # graceful shutdown, so the process would die of SIGTERM rather than exit 0.
        action = self.lifecycle.on_signal(sig)
        if action is Action.EXIT_NOW:
            os.write(2, b"sluice: second signal: exiting now, without draining\n")
            os._exit(128 + sig)
        if action is Action.DRAIN:
            self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.metrics is not None and self.started:
            await self.metrics.start()

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        if self.metrics is not None and counter % 10 == 0:  # uvicorn's fresh Date header
            self.metrics.server.server_state.default_headers = self.server_state.default_headers
        if should_exit or self.lifecycle.phase is not Phase.LAME_DUCK:
            return should_exit  # serving, or draining at once (SIGINT, no delay)
        if not self._announced:
            self._announced = True
            log.info("lame duck: readiness answers 503; serving %.1f s more, with Connection: "
                     "close, before draining", self.lifecycle.shutdown_delay_s)
        headers = self.server_state.default_headers
        if CONNECTION_CLOSE not in headers:
            self.server_state.default_headers = [*headers, CONNECTION_CLOSE]
        self._closer.tick(list(self.server_state.connections))
        return self.lifecycle.drain_due()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, drain the app (its lifespan shutdown), then let answers be written.

        uvicorn's own order (wait for connections, then the app's shutdown) would stack its
        graceful timeout on top of the drain; here the app's drain bounds both.
        """
        self.lifecycle.begin_drain()
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        log.info("draining: listener closed; finishing queued and running requests")
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await self.lifespan.shutdown()
        await self._finish_connections(WRITE_MARGIN_S)
        if self.metrics is not None:
            await self.metrics.stop()

    async def _finish_connections(self, margin_s: float) -> None:
        """Wait for the requests' tasks to write their answers, then for the connections to go."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + margin_s
        tasks = self.server_state.tasks
        while tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(tasks), timeout=left)
        if tasks:
            log.error("cancelling %d request(s) still unanswered %.0f s after the drain",
                      len(tasks), margin_s)
            for task in list(tasks):
                task.cancel()
        closed = [asyncio.ensure_future(server.wait_closed()) for server in self.servers]
        if closed:
            await asyncio.wait(closed, timeout=max(0.5, deadline - loop.time()))


def serve(
    app: ASGIApp, settings: Settings, lifecycle: Lifecycle,
    sockets: list[socket.socket] | None = None,
) -> int:
    """Run the server until a signal has shut it down; the process's exit code. ``sockets``:
    listen on these (a front end's ``SO_REUSEPORT`` socket) instead of host and port."""
    metrics = None
    if settings.metrics_port:
        try:
            metrics = MetricsListener(app, settings.host, settings.metrics_port, settings.log_level)
        except OSError as e:
            print(f"sluice: metrics port {settings.metrics_port}: {e.strerror}", file=sys.stderr)
            return 2
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=protocol_class(ReadLimits(
            header_timeout_s=settings.header_timeout_s, body_timeout_s=settings.body_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            max_header_count=settings.max_header_count,
        )),
        log_level=settings.log_level,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]
        limit_concurrency=settings.max_connections,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    server = SluiceServer(config, lifecycle, metrics=metrics)
    server.run(sockets=sockets)
    return 0
