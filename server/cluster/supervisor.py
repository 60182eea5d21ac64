"""The parent of ``sluice serve --frontends N``: starts the engine process and N front ends,
restarts whichever dies, and runs the shutdown across them.

SIGTERM / SIGINT are forwarded to every front end (each runs its own lame duck and drain:
readiness 503, then it stops accepting and waits for its calls to be answered); once they have
all exited the engine process is told to drain (SIGTERM) and the supervisor exits 0. A second
signal kills everything at once. The children run in their own session (a terminal's Ctrl-C
reaches only the supervisor) and die with it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

from server.cluster.sockets import reuseport_socket
from server.settings import Settings

log = logging.getLogger("sluice.supervisor")
#: A child that dies within this long of its start is restarted after ``RESTART_BACKOFF_S``.
EARLY_DEATH_S = 5.0
RESTART_BACKOFF_S = 1.0


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    argv: list[str]
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    exited: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    def __init__(self, settings: Settings, frontends: int) -> None:
        self.settings = settings
        self.frontends = frontends
        self.stopping = False
        self.signals = 0
        self.children: list[Child] = []

    async def _spawn(self, child: Child) -> None:
        child.exited.clear()
        child.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *child.argv, stdin=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent)
        assert child.process.stdin is not None
        child.process.stdin.write(self.settings.model_dump_json().encode())
        child.process.stdin.close()
        child.started = time.monotonic()
        log.info("%s started: pid %d", child.name, child.process.pid)

    async def _watch(self, child: Child) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self.stopping:
                log.info("%s exited: %d", child.name, code)
                child.exited.set()
                return
            log.error("%s (pid %d) died: %d; restarting", child.name, child.process.pid, code)
            if time.monotonic() - child.started < EARLY_DEATH_S:
                await asyncio.sleep(RESTART_BACKOFF_S)
            if self.stopping:
                child.exited.set()
                return
            child.restarts += 1
            await self._spawn(child)

    def _signal(self, sig: int) -> None:
        self.signals += 1
        self.stopping = True
        for child in self.children[1:]:  # front ends: their own lame duck / drain / exit now
            if child.process is not None and child.process.returncode is None:
                child.process.send_signal(sig)
        if self.signals > 1:
            os.write(2, b"sluice: second signal: exiting now, without draining\n")
            for child in self.children:
                if child.process is not None and child.process.returncode is None:
                    child.process.kill()
        self._signalled.set()

    async def run(self, port: int, endpoint: str) -> int:
        loop = asyncio.get_running_loop()
        self._signalled = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal, sig)
        engine = Child("engine process", ["server.cluster.engine", "--endpoint", endpoint,
                                          "--frontends", str(self.frontends)])
        self.children = [engine] + [
            Child(f"front end {i}", ["server.cluster.frontend", "--index", str(i),
                                     "--endpoint", endpoint, "--port", str(port)])
            for i in range(self.frontends)]
        for child in self.children:
            await self._spawn(child)
        watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
        await self._signalled.wait()
        grace = self.settings.shutdown_delay_s + self.settings.drain_timeout_s + 10.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.exited.wait() for c in self.children[1:])), grace)
        if engine.process is not None and engine.process.returncode is None:
            engine.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(engine.exited.wait(), self.settings.drain_timeout_s + 10.0)
        for child in self.children:
            if child.process is not None and child.process.returncode is None:
                child.process.kill()
        for task in watchers:
            task.cancel()
        return 0 if self.signals == 1 else 128 + signal.SIGTERM


def run_cluster(settings: Settings, frontends: int) -> int:
    """``sluice serve`` with ``frontends`` >= 1 front-end processes; the exit code."""
    try:  # holds the port (bound, never listening: the kernel routes nothing to it)
        holder = reuseport_socket(settings.host, settings.port, listen=False)
    except OSError as e:
        print(f"sluice: port {settings.port}: {e.strerror}", file=sys.stderr)
        return 2
    port = holder.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="sluice-cluster-")
    log.info("sluice cluster: engine process + %d front end(s) on %s:%d (ipc in %s)",
             frontends, settings.host, port, folder)
    try:
        return asyncio.run(Supervisor(settings, frontends).run(port, f"ipc://{folder}/engine"))
    finally:
        holder.close()
        shutil.rmtree(folder, ignore_errors=True)
