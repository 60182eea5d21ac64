"""Start a server under test as a subprocess, wait until it is ready, stop it cleanly.

Servers are started one at a time: two servers loaded on two cores would measure each other.
``cpus`` pins a server with ``taskset`` (for example the server on ``1`` and the generator on
``0``); by default nothing is pinned and the report states the generator's CPU share instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class ServerFailed(RuntimeError):
    """The server exited or never became ready; the message carries its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """A blocking GET for control-plane calls (readiness, stats), never for load."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


@dataclass
class RunningServer:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def with_model_control(
    args: Sequence[str], env: dict[str, str], admin_key: str | None
) -> list[str]:
    """``args`` with load and unload on (``--model-control-mode explicit``) and ``env`` given
    ``admin_key`` as the server's admin key; unchanged when ``admin_key`` is None."""
    if not admin_key:
        return list(args)
    env["SLUICE_ADMIN_KEYS"] = admin_key
    return ["--model-control-mode", "explicit", *args]


def sluice_command(
    repository: Path, model: str, port: int, extra: Sequence[str] = ()
) -> list[str]:
    """``sluice serve`` for one model, never building (the bench measures, it does not build)."""
    exe = shutil.which("sluice") or str(Path(sys.executable).with_name("sluice"))
    if not Path(exe).exists():
        return [sys.executable, "-c", "from server.cli import main; raise SystemExit(main())",
                "serve", "--model-repository", str(repository), "--host", "127.0.0.1",
                "--port", str(port), "--models", model, "--no-build", *extra]
    return [exe, "serve", "--model-repository", str(repository), "--host", "127.0.0.1",
            "--port", str(port), "--models", model, "--no-build", *extra]


def naive_command(
    repository: Path, model: str, port: int, threads: int, version: str | None = None
) -> list[str]:
    return [sys.executable, "-m", "loadtests.naive_server", "--model-repository", str(repository),
            "--model", model, "--host", "127.0.0.1", "--port", str(port),
            "--threads", str(threads), *(["--version", version] if version else [])]


def pinned(command: list[str], cpus: str | None) -> list[str]:
    if not cpus:
        return command
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("--server-cpus needs taskset (util-linux)")
    return [taskset, "-c", cpus, *command]


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Same thread settings for every server: intra-op threads = ``threads``, quiet logs."""
    env = dict(os.environ if base is None else base)
    root = str(REPO_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update({
        "SLUICE_ENGINE_THREADS": str(threads),
        "SLUICE_LOG_LEVEL": "warning",
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    })
    return env


@contextlib.contextmanager
def serve(
    name: str,
    command: list[str],
    port: int,
    env: Mapping[str, str],
    ready_timeout_s: float = 120.0,
    cwd: Path = REPO_ROOT,
) -> Iterator[RunningServer]:
    """Run ``command`` until the ``with`` block ends; ready means ``/v2/health/ready`` is 200."""
    log = Path(tempfile.mkstemp(prefix=f"sluice-bench-{name}-", suffix=".log")[1])
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
            start_new_session=True,
        )
    server = RunningServer(name, f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server, ready_timeout_s)
        yield server
    finally:
        stop(server)
        with contextlib.suppress(OSError):
            log.unlink()


def _wait_ready(server: RunningServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(OSError):
            status, _ = http_get(server.url + "/v2/health/ready", timeout_s=1.0)
            if status == 200:
                return
        time.sleep(0.2)
    raise ServerFailed(f"{server.name} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def stop(server: RunningServer, grace_s: float = 15.0) -> None:
    """SIGINT (graceful for uvicorn), then SIGKILL of the whole process group if it lingers."""
    process = server.process
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5.0)
