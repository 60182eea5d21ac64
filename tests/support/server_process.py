"""Start a real ``sluice serve`` process on a free loopback port and wait until it is ready.

Readiness is read from the process's own log lines (no polling loop): uvicorn's
"Uvicorn running on" and Sluice's "model loading finished" line.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)
    _new_line: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, matches: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first output line (so far or to come) that ``matches``; fails after ``timeout``."""
        with self._new_line:
            found = self._new_line.wait_for(
                lambda: next((line for line in self.lines if matches(line)), None), timeout
            )
        if found is None:
            raise AssertionError(f"no matching output line in {timeout}s:\n{self.log()}")
        return found


def start_server(
    repository: Path,
    *,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
    expect_ready: bool = True,
    python: str = sys.executable,
    cwd: Path | None = None,
) -> ServerProcess:
    """``python``/``cwd``: another environment's interpreter, run outside this source tree so
    that it serves its own installed sluice (the base-install test)."""
    port = free_port()
    cmd = [python, "-m", "server.cli", "serve", "--model-repository", str(repository),
           "--host", "127.0.0.1", "--port", str(port), "--no-build",
           # no lame duck on stop() unless a test asks for one: ``extra_args`` come after, and
           # the last --shutdown-delay-s wins
           "--shutdown-delay-s", "0", *extra_args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=full_env, cwd=cwd or Path(__file__).resolve().parents[2])
    server = ServerProcess(process, port)
    events: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with server._new_line:
                server.lines.append(line)
                server._new_line.notify_all()
            events.put(line)
        events.put("")  # EOF

    threading.Thread(target=pump, daemon=True).start()
    seen_running = seen_loaded = False
    while not (seen_running and seen_loaded):
        try:
            line = events.get(timeout=ready_timeout)
        except queue.Empty:
            server.stop()
            raise RuntimeError(f"server not ready in {ready_timeout}s:\n{server.log()}") from None
        if line == "":
            raise RuntimeError(f"server exited early ({process.wait()}):\n{server.log()}")
        seen_running |= "Uvicorn running on" in line
        seen_loaded |= "model loading finished" in line
        if seen_loaded and expect_ready and "ready=False" in line:
            server.stop()
            raise RuntimeError(f"server loaded with failures:\n{server.log()}")
    return server
