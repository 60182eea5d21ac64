"""The floor benchmark's parts: the bare ASGI app, the prebuilt requests, a lean closed loop.

The server cost per request is only a few tens of microseconds here, so the generator must cost
less than the server it measures: each worker is an ``asyncio.Protocol`` that writes a request
prebuilt to the last byte (head and body) and parses only the status line and
``content-length`` of the answer. :mod:`loadtests.loadgen`'s streams client costs about twice
that, and cannot send the binary extension's ``Inference-Header-Content-Length``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FLOOR_BODY = b'{"model_name":"floor","model_version":"1","predictions":[[{"label":"x","score":1.0}]]}'
_FLOOR_HEADERS = [(b"content-type", b"application/json"),
                  (b"content-length", b"%d" % len(FLOOR_BODY))]


async def floor_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                    send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """A bare ASGI app: reads the body, answers a constant JSON body (any path, any method)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    await send({"type": "http.response.start", "status": 200, "headers": _FLOOR_HEADERS})
    await send({"type": "http.response.body", "body": FLOOR_BODY})


def floor_command(python: str, port: int) -> list[str]:
    """uvicorn on the floor app with ``sluice serve``'s loop and parser (uvloop, httptools)."""
    return [python, "-m", "uvicorn", "loadtests.floor_load:floor_app", "--host", "127.0.0.1",
            "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning"]


# -- requests ------------------------------------------------------------------------------------


def _raw(path: str, body: bytes, port: int, extra: bytes = b"",
         content_type: bytes = b"application/json") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (path.encode(), port, content_type, len(body), extra)
            ) + body


def classify_requests(model: str, texts: Sequence[str], port: int) -> list[bytes]:
    return [_raw(f"/v1/models/{model}/classify", orjson.dumps({"inputs": [t]}), port)
            for t in texts]


def infer_json_requests(model: str, texts: Sequence[str], port: int) -> list[bytes]:
    return [_raw(f"/v2/models/{model}/infer", orjson.dumps({"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [1], "data": [t]}]}), port) for t in texts]


def infer_binary_requests(model: str, texts: Sequence[str], port: int) -> list[bytes]:
    """The binary tensor extension both ways: the text as raw BYTES, both outputs binary."""
    out = []
    for t in texts:
        data = t.encode()
        blob = struct.pack("<I", len(data)) + data
        head = orjson.dumps({
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                        "parameters": {"binary_data_size": len(blob)}}],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                        {"name": "probabilities", "parameters": {"binary_data": True}}]})
        out.append(_raw(f"/v2/models/{model}/infer", head + blob, port,
                        b"Inference-Header-Content-Length: %d\r\n" % len(head),
                        b"application/octet-stream"))
    return out


# -- the closed loop -----------------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """One keep-alive connection; ``ask`` writes a prebuilt request, awaits (status, body)."""

    def __init__(self) -> None:
        self.transport: Any = None  # an asyncio or uvloop TCP transport
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def ask(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None:
            return
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4:total])
        del buffer[:total]
        self._waiter = None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))


@dataclass
class LeanRun:
    """What one point observed inside its window (after the warm-up)."""

    window_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu_s: float = 0.0
    generator_cpu_s: float = 0.0
    bad_first_answer: str | None = None


def process_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its waited children, plus those of its live children."""
    total = 0.0
    tick = 1.0 / _CLOCK_TICKS
    pids = [pid, *_children(pid)]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15]) * tick  # utime stime cutime cstime
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = Path(f"/proc/{p}/task").iterdir()
            kids = [int(c) for t in tasks for c in (t / "children").read_text().split()]
        except OSError:
            continue
        found.extend(kids)
        todo.extend(kids)
    return found


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def lean_closed_loop(
    port: int, requests: Sequence[bytes], concurrency: int, duration_s: float, warmup_s: float,
    server_pid: int | None, check: Callable[[bytes], str | None], timeout_s: float = 30.0,
) -> LeanRun:
    """``concurrency`` connections sending back to back; CPU of both sides over the window."""
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(concurrency):
        _, client = await loop.create_connection(_Client, "127.0.0.1", port)
        clients.append(client)
    status, body = await clients[0].ask(requests[0])
    run = LeanRun(window_s=duration_s)
    run.bad_first_answer = f"http {status}: {body[:200]!r}" if status != 200 else check(body)
    start = time.perf_counter() + warmup_s
    end = start + duration_s
    cpu: dict[str, float] = {}

    async def window() -> None:
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        cpu["server"] = process_cpu_s(server_pid) if server_pid else 0.0
        cpu["generator"] = _self_cpu_s()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        run.server_cpu_s = (process_cpu_s(server_pid) if server_pid else 0.0) - cpu["server"]
        run.generator_cpu_s = _self_cpu_s() - cpu["generator"]

    async def worker(client: _Client, i: int) -> None:
        n = len(requests)
        latencies = run.latencies_s
        while (started := time.perf_counter()) < end:
            status, _ = await client.ask(requests[i % n])
            i += 1
            ended = time.perf_counter()
            if start <= ended <= end:
                if status == 200:
                    latencies.append(ended - started)
                else:
                    run.errors[f"http {status}"] += 1

    try:
        async with asyncio.timeout(warmup_s + duration_s + timeout_s):
            await asyncio.gather(window(), *(worker(c, i) for i, c in enumerate(clients)))
    except (TimeoutError, ConnectionError) as e:
        run.errors[type(e).__name__] += 1
    finally:
        for client in clients:
            if client.transport is not None:
                client.transport.close()
    return run
