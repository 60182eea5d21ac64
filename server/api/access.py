"""Per-request observability, as pure ASGI middleware around the whole application.

For every HTTP request, errors included (the route's own, the body reader's 413, validation's
400, an unknown path's 404, an unhandled exception's 500):

- ``X-Request-ID``: the client's, if it is 1..128 visible ASCII characters, else a made one
  (16 hex digits); echoed on the response.
- ``sluice_http_requests_total{model,route,status}`` counts it (see :mod:`server.metrics`).
- ``Server-Timing`` on every response of the inference routes (``infer``, ``classify``; JSON
  and binary, errors too): the scheduler's stage times and the time until the response
  started, in milliseconds, e.g.
  ``queue;dur=0.412, prepare;dur=0.081, compute;dur=1.203, total;dur=1.900``. ``total`` minus
  the stages is body parsing and encoding, thread hand-offs and the wait of a batch prepared
  ahead for a free instance; a stage the request never reached (a cache hit, an early error)
  is 0.
- With ``access_log`` on, one JSON line on the ``sluice.access`` logger at INFO: ``time`` (UTC,
  when the response finished), ``request_id``, ``method``, ``path`` (the route template, e.g.
  ``/v2/models/{model}/infer``; the path itself, without the query, when no route matched),
  ``model``, ``version`` (the one that served it, else the one asked for, else null),
  ``status``, ``queue_us``, ``prepare_us``, ``compute_us``, ``total_us`` (until the last body
  byte was handed to the server), ``batch_size`` (items of the batch it ran in, 0 when it ran
  in none) and ``client`` (``host:port``). Never the body or the query.

The stage times reach this layer through :data:`server.service.REQUEST_TIMINGS`: a
:class:`~server.scheduler.timings.Timings` made here per request, filled by the batcher.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import random
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import Metrics
from server.scheduler.timings import Timings
from server.service import REQUEST_TIMINGS

ACCESS_LOGGER = "sluice.access"
REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_MAX_LOGGED_CHARS = 200  # of a client-chosen path, model or version in the log
_TIMED_ROUTES = frozenset({"infer", "classify", "rank"})
_INTERNAL_ERROR = orjson.dumps({"error": "internal server error"})

access_log = logging.getLogger(ACCESS_LOGGER)
#: Request ids need to be unique, not secret: a seeded generator, not a system call each.
_ids = random.Random(int.from_bytes(os.urandom(16), "big"))
os.register_at_fork(after_in_child=lambda: _ids.seed(int.from_bytes(os.urandom(16), "big")))


def route_label(template: str | None) -> str:
    """The ``route`` label of a route template (``None``: no route matched)."""
    if template is None:
        return "other"
    if template == "/metrics":
        return "metrics"
    if template.startswith("/v2/health/"):
        return "health"
    if template.startswith("/v2/repository/"):
        return "repository"
    last = template.rsplit("/", 1)[-1]
    if last in ("infer", "classify", "rank", "ready", "config", "stats"):
        return last
    if template == "/v2" or template.startswith("/v2/models/"):
        return "metadata"
    return "other"


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is valid, else a new random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _VALID_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return f"{_ids.getrandbits(64):016x}"


def server_timing(timings: Timings, total_s: float) -> bytes:
    return b"queue;dur=%.3f, prepare;dur=%.3f, compute;dur=%.3f, total;dur=%.3f" % (
        timings.queue_s * 1e3, timings.prepare_s * 1e3, timings.compute_s * 1e3, total_s * 1e3
    )


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each bare line to the ``sys.stdout`` of the moment (tests swap it).

    An access line (:meth:`write_line`) goes into the stream's buffer at once, in order with
    everything else written there; the stream is flushed once the event loop has finished its
    iteration: one system call for every response that finished in it, not one per request.
    Outside a running loop, each line is flushed at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._unflushed: Any = None  # the stream written to since the last flush

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)

    def write_line(self, line: bytes) -> None:
        """What ``emit`` writes for a record of ``line``, without making the record."""
        with self.lock:  # type: ignore[union-attr]
            try:
                stream = sys.stdout
                stream.write(line.decode() + self.terminator)
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": line.decode(errors="replace")}))
                return
            if self._unflushed is stream:
                return  # a flush is scheduled already
            if self._unflushed is not None:
                self.flush_lines()
            self._unflushed = stream
        try:
            asyncio.get_running_loop().call_soon(self.flush_lines)
        except RuntimeError:  # no loop: at once
            self.flush_lines()

    def flush_lines(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            stream, self._unflushed = self._unflushed, None
            if stream is None:
                return
            try:
                stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "flushing the access log"}))


def _log_line(line: bytes) -> None:
    """Log ``line`` at INFO on the access logger (its level already checked).

    With the default set-up (only our handler, no filters) the line is written directly: the
    same bytes, without the ~10 us a LogRecord and the handler chain cost. Any other set-up
    (handlers, filters of one's own) gets the ordinary ``Logger.info``.
    """
    handlers = access_log.handlers
    if len(handlers) == 1 and not access_log.filters:
        handler = handlers[0]
        if type(handler) is _StdoutHandler and not handler.filters and handler.level <= logging.INFO:
            handler.write_line(line)
            return
    access_log.info(line.decode())


def configure_access_logger() -> None:
    """Unless logging was configured for it already: INFO, bare lines on stdout, and not
    propagated to the root logger (whose format would wrap the JSON)."""
    if access_log.level == logging.NOTSET:
        access_log.setLevel(logging.INFO)
    if not access_log.handlers:
        handler = _StdoutHandler()
        atexit.register(handler.flush_lines)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False


def install(app: FastAPI, metrics: Metrics, *, access_log: bool) -> None:
    """Wrap ``app`` (outside its exception handlers, so their answers are seen too)."""
    if access_log:
        configure_access_logger()
    app.add_middleware(AccessMiddleware, metrics=metrics, access_log=access_log)


class _Clock:
    """ISO-8601 UTC timestamps with milliseconds; the seconds part is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


class AccessMiddleware:
    """Request id, request counter, Server-Timing and the JSON access log (see the module)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, access_log: bool) -> None:
        self.app = app
        self._metrics = metrics
        self._log = access_log
        self._routes: dict[str, str] = {}
        self._clock = _Clock()

    def _route(self, scope: Scope) -> tuple[str, str | None]:
        """(route label, route template) of a request the router has seen."""
        template: str | None = getattr(scope.get("route"), "path", None)
        if template is None:
            return "other", None
        label = self._routes.get(template)
        if label is None:
            label = self._routes[template] = route_label(template)
        return label, template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        timings = Timings()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), id_header]
                if self._route(scope)[0] in _TIMED_ROUTES:
                    elapsed = time.perf_counter() - started
                    headers.append((b"server-timing", server_timing(timings, elapsed)))
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_TIMINGS.set(timings)
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not status:  # answer here, so that this response too carries the request id
                with contextlib.suppress(Exception):
                    await send_with_headers({"type": "http.response.start", "status": 500,
                                             "headers": [(b"content-type", b"application/json")]})
                    await send_with_headers({"type": "http.response.body", "body": _INTERNAL_ERROR})
            raise
        finally:
            REQUEST_TIMINGS.reset(token)
            self._finish(scope, status or 499, request_id, timings, started)

    def _finish(
        self, scope: Scope, status: int, request_id: str, timings: Timings, started: float
    ) -> None:
        route, template = self._route(scope)
        params: dict[str, Any] = scope.get("path_params") or {}
        model = params.get("model")
        self._metrics.count_http(
            self._metrics.http_model_label(model) if model else "", route, status
        )
        if self._log and access_log.isEnabledFor(logging.INFO):
            total_s = time.perf_counter() - started
            client = scope.get("client")
            version = timings.version or params.get("version")
            _log_line(orjson.dumps({
                "time": self._clock.iso(time.time()),
                "request_id": request_id,
                "method": scope["method"],
                "path": template or scope["path"][:_MAX_LOGGED_CHARS],
                "model": model[:_MAX_LOGGED_CHARS] if model else None,
                "version": str(version)[:_MAX_LOGGED_CHARS] if version else None,
                "status": status,
                "queue_us": round(timings.queue_s * 1e6),
                "prepare_us": round(timings.prepare_s * 1e6),
                "compute_us": round(timings.compute_s * 1e6),
                "total_us": round(total_s * 1e6),
                "batch_size": timings.batch_items,
                "client": f"{client[0]}:{client[1]}" if client else None,
            }))
