"""The front end's connection to the engine process: one DEALER socket, one reader task that
resolves each call's future ("if not done"), one heartbeat task.

The engine counts as gone when its snapshots stop for ``PEER_TIMEOUT_S`` or it comes back with
another boot id: every call still pending then fails with ``ModelNotReady`` (503) at once, and
calls are refused (503) until it is back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from server.cluster import messages as m
from server.errors import ModelNotReady

log = logging.getLogger("sluice.frontend")

#: Every how many beats a front end sends its own metrics (merged by the engine).
METRICS_EVERY = 5


class EngineClient:
    _ctx: zmq.asyncio.Context
    _sock: zmq.asyncio.Socket

    def __init__(self, endpoint: str, index: int,
                 render_metrics: Callable[[], bytes] = lambda: b"") -> None:
        self.endpoint = endpoint
        self.index = index
        self.render_metrics = render_metrics
        self.snapshot: m.Snapshot | None = None
        self.boot: str | None = None
        self.metrics = b""
        self._last_seen = 0.0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.connected = asyncio.Event()
        self._ready = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _lost(self, why: str) -> None:
        self.connected.clear()
        self.snapshot = None
        self._log_readiness(False)
        failed = 0
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ModelNotReady(f"engine process unavailable: {why}"))
                failed += 1
        log.error("front end %d: engine process lost (%s); %d pending request(s) failed",
                  self.index, why, failed)

    async def call(self, method: str, payload: Any) -> tuple[Any, Any]:
        """The engine's answer (value, timings) to ``method(payload)``; its error, re-raised."""
        if not self.connected.is_set():
            raise ModelNotReady("engine process unavailable")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            try:
                await self._sock.send(
                    m.dumps(("call", rid, method, payload, time.monotonic())), flags=zmq.NOBLOCK)
            except zmq.Again:
                raise ModelNotReady("engine process unavailable") from None
            try:
                ok, value, timings = await future
            except asyncio.CancelledError:
                self._post(("cancel", rid))
                raise
        finally:
            self._pending.pop(rid, None)
        if not ok:
            raise m.decode_error(value)
        return value, timings

    def _log_readiness(self, ready: bool) -> None:
        if ready != self._ready:
            self._ready = ready
            log.info("front end %d: cluster %s", self.index, "ready" if ready else "not ready")

    def _post(self, message: tuple[Any, ...]) -> None:
        """Send without waiting; dropped when the engine is not connected."""
        sent = self._sock.send(m.dumps(message), flags=zmq.NOBLOCK)
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _on_message(self, message: tuple[Any, ...]) -> None:
        if message[0] == "reply":
            _, rid, ok, value, timings = message
            future = self._pending.get(rid)
            if future is not None and not future.done():
                future.set_result((ok, value, timings))
            return
        _, boot, snapshot = message
        if self.boot is not None and boot != self.boot and self.connected.is_set():
            self._lost("it restarted")
        if boot != self.boot:
            log.info("front end %d: connected to engine process (boot %s)", self.index, boot[:8])
        self.boot, self.snapshot = boot, snapshot
        self._log_readiness(snapshot.ready)
        if snapshot.metrics:
            self.metrics = snapshot.metrics
        self._last_seen = time.monotonic()
        self.connected.set()

    async def _read(self) -> None:
        while True:
            data = await self._sock.recv()
            self._on_message(m.loads(data))

    async def _beat(self) -> None:
        for n in itertools.count():
            metrics = self.render_metrics() if n % METRICS_EVERY == 0 else b""
            self._post(("beat", self.index, metrics))
            await asyncio.sleep(m.HEARTBEAT_S)
            if (self.connected.is_set()
                    and time.monotonic() - self._last_seen > m.PEER_TIMEOUT_S):
                self._lost("no heartbeat answer")

    def _open(self) -> None:
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.IDENTITY, f"fe{self.index}-{os.getpid()}".encode())
        for option in (zmq.LINGER, zmq.SNDHWM, zmq.RCVHWM):
            self._sock.setsockopt(option, 0)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for an engine not connected
        self._sock.setsockopt(zmq.RECONNECT_IVL, 50)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        self._sock.connect(self.endpoint)

    async def run(self) -> None:
        """Connect and serve until cancelled."""
        self._open()
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._beat())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            self._sock.close(0)
            self._ctx.term()

    async def drain(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for the calls still pending to be answered."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            await asyncio.wait(set(self._pending.values()), timeout=deadline - time.monotonic())
