"""Closed-loop (fixed concurrency) and open-loop (fixed arrival rate) load generation.

Closed loop: ``concurrency`` workers, each on its own keep-alive connection, send the next
request as soon as the previous answer arrives. Open loop: requests start on a fixed schedule
whatever the server does, and latency is measured from the *scheduled* start, so a generator
or server that falls behind cannot hide it (no coordinated omission).

Only requests that complete inside the measurement window (after a warm-up) count. The
generator's own CPU time over the window is measured with ``getrusage`` so the report can say
how much of the machine the measurement itself took.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loadtests.http_client import Connection, HttpError, split_url
from loadtests.workload import Workload

WindowHook = Callable[[], Awaitable[None]]


@dataclass
class RawRun:
    """What one load run observed inside its window."""

    window_s: float
    latencies_s: list[float] = field(default_factory=list)
    texts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    generator_cpu_s: float = 0.0
    issued: int = 0
    max_lateness_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def generator_cores(self) -> float:
        """Cores the generator kept busy on average (0.25 = a quarter of one core)."""
        return self.generator_cpu_s / self.window_s if self.window_s > 0 else 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Window:
    """The measurement window; runs the hooks (metrics scrapes) at its edges."""

    def __init__(self, warmup_s: float, duration_s: float) -> None:
        now = time.perf_counter()
        self.start = now + warmup_s
        self.end = self.start + duration_s
        self._cpu_start = 0.0

    async def watch(self, run: RawRun, on_start: WindowHook | None, on_end: WindowHook | None) -> None:
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        self._cpu_start = _cpu_seconds()
        if on_start is not None:
            await on_start()
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        run.generator_cpu_s = _cpu_seconds() - self._cpu_start
        if on_end is not None:
            await on_end()

    def record(self, run: RawRun, started: float, ended: float, texts: int, error: str | None) -> None:
        if not self.start <= ended <= self.end:
            return
        if error is None:
            run.latencies_s.append(ended - started)
            run.texts += texts
        else:
            run.errors[error] += 1


async def _send(
    conn: Connection, workload: Workload, timeout_s: float
) -> tuple[int, str | None]:
    request = workload.next_request()
    try:
        async with asyncio.timeout(timeout_s):
            response = await conn.request("POST", request.path, request.body)
    except TimeoutError:
        return request.texts, "timeout"
    except (HttpError, OSError) as e:
        return request.texts, f"connection: {type(e).__name__}"
    if response.status != 200:
        return request.texts, f"http {response.status}"
    if not workload.check(response.body, request.texts):
        return request.texts, "bad answer"
    return request.texts, None


async def closed_loop(
    url: str,
    workload: Workload,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    timeout_s: float = 30.0,
    on_start: WindowHook | None = None,
    on_end: WindowHook | None = None,
) -> RawRun:
    """``concurrency`` workers, each sending back to back on its own connection."""
    host, port = split_url(url)
    window = _Window(warmup_s, duration_s)
    run = RawRun(window_s=duration_s)

    async def worker() -> None:
        conn = Connection(host, port, workload.headers)
        try:
            while time.perf_counter() < window.end:
                started = time.perf_counter()
                texts, error = await _send(conn, workload, timeout_s)
                window.record(run, started, time.perf_counter(), texts, error)
                run.issued += 1
                if error is not None:
                    await asyncio.sleep(0.01)  # a refused or broken request must not spin
        finally:
            await conn.close()

    watcher = asyncio.create_task(window.watch(run, on_start, on_end))
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await watcher
    return run


async def open_loop(
    url: str,
    workload: Workload,
    rate_per_s: float,
    duration_s: float,
    warmup_s: float = 1.0,
    timeout_s: float = 30.0,
    max_in_flight: int = 2048,
    on_start: WindowHook | None = None,
    on_end: WindowHook | None = None,
) -> RawRun:
    """Start requests every ``1/rate_per_s`` seconds; latency counts from the scheduled time."""
    if rate_per_s <= 0:
        raise ValueError("rate must be positive")
    host, port = split_url(url)
    window = _Window(warmup_s, duration_s)
    run = RawRun(window_s=duration_s)
    idle: list[Connection] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        conn = idle.pop() if idle else Connection(host, port, workload.headers)
        texts, error = await _send(conn, workload, timeout_s)
        window.record(run, scheduled, time.perf_counter(), texts, error)
        idle.append(conn)

    watcher = asyncio.create_task(window.watch(run, on_start, on_end))
    interval = 1.0 / rate_per_s
    first = time.perf_counter()
    n = 0
    while True:
        scheduled = first + n * interval
        if scheduled >= window.end:
            break
        now = time.perf_counter()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        elif window.start <= scheduled:
            run.max_lateness_s = max(run.max_lateness_s, now - scheduled)
        n += 1
        run.issued += 1
        if len(in_flight) >= max_in_flight:
            window.record(run, scheduled, time.perf_counter(), 0, "generator: too many in flight")
            continue
        task = asyncio.create_task(one(scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=timeout_s + 1.0)
    await watcher
    for conn in idle:
        with contextlib.suppress(Exception):
            await conn.close()
    return run


def install_fast_loop() -> None:
    """Use uvloop when it is installed: it roughly halves the generator's CPU per request."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
