"""A real nginx on loopback in front of upstreams a test adds and removes, like a Service.

The test plays the endpoints controller: ``set_upstreams`` rewrites the upstream list and reloads
nginx (SIGHUP to the master, what ``nginx -s reload`` sends), returning once the new workers run.
The balancer never retries a request on another upstream (``proxy_next_upstream off``, like
kube-proxy), keeps connections alive to the upstreams (so one stays pinned to a replica that is
shutting down), and names the upstream that answered in an ``X-Upstream`` response header.
``max_fails=0`` also turns off nginx's passive health check, as kube-proxy has none: a listed
upstream then gets its share of requests until it leaves the list, refused or not; with nginx's
default (1) one failed request marks it down for ten seconds.

Clients keep their connections alive to a second, never-reloaded nginx in front, which opens a
fresh connection to the balancer per request: a reload closes the balancer's idle kept-alive
client connections without reading what just arrived on them, which would lose requests that no
replica ever saw (nginx's own reload hazard, not the replicas').

Everything (configs, pids, logs, temp folders) lives in the folder given; nginx runs as the
current user, in the foreground (``daemon off``).
"""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.server_process import free_port

UPSTREAM_HEADER = "x-upstream"
STARTED, STOPPING = "start worker process", "gracefully shutting down"
COMMON = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log notice;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    keepalive_timeout 60s;
    keepalive_requests 100000;
{http}
}}
"""
BALANCER = """\
    upstream replicas {{
        include {root}/upstreams.conf;
        keepalive 32;
        keepalive_requests 100000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream off;
            proxy_read_timeout 30s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
"""
FRONT = """\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{balancer_port};
            proxy_next_upstream off;
            proxy_read_timeout 30s;
        }}
    }}
"""


class Nginx:
    """One nginx master process running ``http`` (the inside of an ``http {}`` block)."""

    def __init__(self, program: str, root: Path, http: str) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        config = root / "nginx.conf"
        config.write_text(COMMON.format(root=root, user=user, http=http))
        self.error_log = root / "error.log"
        self.error_log.touch()
        self.process = subprocess.Popen(
            [program, "-p", str(root), "-c", str(config), "-e", str(self.error_log),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        self._wait_for(STARTED, 0)

    def _count(self, line: str) -> int:
        return self.error_log.read_text().count(line)

    def _wait_for(self, line: str, before: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._count(line) <= before:
            log = self.error_log.read_text()
            if "[emerg]" in log or self.process.poll() is not None:
                raise RuntimeError(f"nginx failed:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not log '{line}' in {timeout}s:\n{log}")
            time.sleep(0.02)

    def reload(self) -> None:
        """Re-read the configuration; returns once the new workers run and the old ones have
        stopped accepting (they log this just before closing their listening sockets)."""
        started, stopping = self._count(STARTED), self._count(STOPPING)
        self.process.send_signal(signal.SIGHUP)
        self._wait_for(STARTED, started)
        self._wait_for(STOPPING, stopping)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LoadBalancer:
    """Clients send to ``url``; the balancer behind it routes to the upstreams of the moment."""

    def __init__(
        self, program: str, root: Path, upstreams: Sequence[str], *, max_fails: int = 1
    ) -> None:
        self.max_fails = max_fails
        self._upstreams = root / "balancer" / "upstreams.conf"
        self._upstreams.parent.mkdir(parents=True, exist_ok=True)
        self._write(upstreams)
        balancer_port, port = free_port(), free_port()
        self.balancer = Nginx(program, root / "balancer",
                              BALANCER.format(root=root / "balancer", port=balancer_port))
        self.front = Nginx(program, root / "front",
                           FRONT.format(port=port, balancer_port=balancer_port))
        self.url = f"http://127.0.0.1:{port}"

    def _write(self, upstreams: Sequence[str]) -> None:
        # nginx refuses an empty upstream block: a replica-less list points at a closed port
        lines = ([f"server {u} max_fails={self.max_fails};" for u in upstreams]
                 or ["server 127.0.0.1:9 down;"])
        self._upstreams.write_text("\n".join(lines) + "\n")

    def set_upstreams(self, upstreams: Sequence[str]) -> None:
        """Route to exactly ``upstreams`` (host:port) from now on."""
        self._write(upstreams)
        self.balancer.reload()

    def stop(self) -> None:
        self.front.stop()
        self.balancer.stop()
