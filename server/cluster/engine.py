"""The engine process: the registry, the batchers and the engines, serving the front ends' calls
(``InferenceService``'s methods and model control) over a ZeroMQ ROUTER socket.

Each call runs as a task (cancelled by a ``cancel`` message, or when its front end stops
beating); a deadline is shortened by the time the call spent in transit (``time.monotonic``
is one clock for every process of the host). It ignores SIGINT (the supervisor decides) and
drains on SIGTERM, which the supervisor sends once every front end has drained.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
import uuid
from typing import Any

import zmq
import zmq.asyncio

from server.app import build_state, load_models
from server.cluster import messages as m
from server.cluster.metrics_merge import merge
from server.scheduler.timings import Timings
from server.service import REQUEST_TIMINGS
from server.settings import Settings
from server.state import ServerState

log = logging.getLogger("sluice.engine")


def _views(state: ServerState) -> tuple[m.EntryView, ...]:
    def version(v: Any) -> m.VersionView:
        b = v.batcher
        return m.VersionView(
            v.name, v.version, v.config, v.inputs, v.outputs, v.is_text, v.available,
            v.load_seconds, m.BatcherView(m.PolicyView(b.policy.priorities),
                                          b.unavailable_reason, b.pending_requests,
                                          b.pending_items))

    return tuple(
        m.EntryView(e.name, e.state, e.reason, e.wanted, e.last_error,
                    {n: version(v) for n, v in e.versions.items()})
        for e in state.registry.entries()
    )


def _shortened(payload: Any, sent_at: float) -> Any:
    """``payload`` with its deadline less the time it spent on the way here."""
    if isinstance(payload, tuple) and payload:  # (request, ...): the request's
        return (_shortened(payload[0], sent_at), *payload[1:])
    timeout_us = getattr(payload, "timeout_us", None)
    if not timeout_us:
        return payload
    spent_us = int((time.monotonic() - sent_at) * 1e6)
    return dataclasses.replace(payload, timeout_us=max(1, timeout_us - spent_us))


class EngineServer:
    def __init__(self, state: ServerState, endpoint: str, frontends: int) -> None:
        self.state = state
        self.endpoint = endpoint
        self.frontends = frontends
        self.boot = uuid.uuid4().hex
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self._seen: dict[bytes, tuple[int, float]] = {}  # identity -> (index, last beat)
        self._metrics: dict[int, bytes] = {}  # front-end index -> its last metrics text
        self._calls: dict[tuple[bytes, int], asyncio.Task[None]] = {}
        self._was_ready = False
        self._merged = b""
        self._merged_at = -1.0

    def _alive(self) -> int:
        now = time.monotonic()
        for ident, (_, seen) in list(self._seen.items()):
            if now - seen > m.PEER_TIMEOUT_S:
                del self._seen[ident]
                gone = [k for k in self._calls if k[0] == ident]
                log.warning("front end %s stopped beating; cancelling its %d call(s)",
                            ident.decode(), len(gone))
                for key in gone:
                    self._calls[key].cancel()
        return len({index for index, _ in self._seen.values()})

    def snapshot(self) -> m.Snapshot:
        registry = self.state.registry
        snap = m.Snapshot(registry.startup_complete, registry.is_ready(), self._alive(),
                          self.frontends, _views(self.state))
        if snap.ready != self._was_ready:
            self._was_ready = snap.ready
            log.info("cluster %s: engine %s, %d of %d front end(s) beating",
                     "ready" if snap.ready else "not ready",
                     "ready" if snap.registry_ready else "not ready", snap.frontends_alive,
                     self.frontends)
        return snap

    async def _send(self, ident: bytes, message: tuple[Any, ...]) -> None:
        await self.sock.send_multipart([ident, m.dumps(message)])

    async def _call(self, ident: bytes, rid: int, method: str, payload: Any,
                    sent_at: float) -> None:
        timings = Timings()
        token = REQUEST_TIMINGS.set(timings)
        try:
            value = await self._dispatch(method, _shortened(payload, sent_at))
            reply: tuple[Any, ...] = ("reply", rid, True, value,
                                      (timings.queue_s, timings.prepare_s, timings.compute_s,
                                       timings.batch_items, timings.version))
        except asyncio.CancelledError:
            return  # the front end gave up on it (client gone, or the front end died)
        except Exception as e:  # every call gets its one answer
            reply = ("reply", rid, False, m.encode_error(e), None)
        finally:
            REQUEST_TIMINGS.reset(token)
            self._calls.pop((ident, rid), None)
        await self._send(ident, reply)

    async def _dispatch(self, method: str, payload: Any) -> Any:
        service, registry = self.state.service, self.state.registry
        if method == "classify":
            return await service.classify(payload)
        if method == "classify_tokens":  # tokenized by the front end: (request, version, ids)
            request, version, tokens = payload
            return await service.classify_tokens(request, tokens, version)
        if method == "infer":
            return await service.infer(payload)
        if method == "rank":
            return await service.rank(payload)
        if method == "load":
            await registry.load(payload)
            return next(v for v in _views(self.state) if v.name == payload)
        if method == "unload":
            await registry.unload(payload)
            return None
        raise ValueError(f"unknown method {method!r}")

    async def serve(self) -> None:
        self.sock.bind(self.endpoint)
        log.info("engine process listening on %s (boot %s)", self.endpoint, self.boot[:8])
        while True:
            ident, data = await self.sock.recv_multipart()
            message = m.loads(data)
            kind = message[0]
            if kind == "call":
                _, rid, method, payload, sent_at = message
                self._calls[(ident, rid)] = asyncio.create_task(
                    self._call(ident, rid, method, payload, sent_at))
            elif kind == "cancel":
                task = self._calls.get((ident, message[1]))
                if task is not None:
                    task.cancel()
            elif kind == "beat":
                _, index, metrics = message
                self._seen[ident] = (index, time.monotonic())
                if metrics:
                    self._metrics[index] = metrics
                snap = self.snapshot()
                if metrics:
                    snap = dataclasses.replace(snap, metrics=self._merged_metrics())
                await self._send(ident, ("snapshot", self.boot, snap))

    def _merged_metrics(self) -> bytes:
        """The engine's and every front end's metrics, merged at most once a second (a front
        end merges its own fresh ones in; the others' are as of their last push)."""
        now = time.monotonic()
        if now - self._merged_at >= 1.0:
            self._merged = merge([self.state.metrics.render(), *self._metrics.values()])
            self._merged_at = now
        return self._merged

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


async def run(settings: Settings, endpoint: str, frontends: int) -> int:
    state = build_state(settings)
    server = EngineServer(state, endpoint, frontends)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the supervisor decides
    loader = asyncio.create_task(load_models(state))
    serving = asyncio.create_task(server.serve())
    await stop.wait()
    log.info("engine process draining")
    loader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loader
    await state.registry.close()
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    server.close()
    state.executor.shutdown(wait=False, cancel_futures=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluice-engine")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--frontends", type=int, required=True)
    args = p.parse_args(argv)
    settings = Settings.model_validate_json(sys.stdin.read())
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s[engine]: %(message)s")
    from server.cli import limit_tokenizer_threads

    limit_tokenizer_threads(settings.tokenizer_threads)
    import uvloop

    return uvloop.run(run(settings, args.endpoint, args.frontends))


if __name__ == "__main__":
    sys.exit(main())
