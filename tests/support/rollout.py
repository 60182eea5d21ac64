"""Real ``sluice serve`` replicas behind nginx, replaced the way a Kubernetes rolling update does.

``Fleet`` plays the Deployment controller, the kubelet and the endpoints controller at once:

- a replica joins nginx's upstream list once its readiness probe answers 200;
- a rolling update (maxSurge 1, maxUnavailable 0) starts a surge replica, lets it join, then
  sends the old one SIGTERM, and removes it from the upstream list ``endpoint_lag_s`` later
  (endpoint removal is asynchronous: the old pod keeps receiving traffic meanwhile);
- nothing else helps: no preStop hook, no retries in nginx (and by default, like kube-proxy,
  no passive health check either).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.nginx import LoadBalancer
from tests.support.server_process import ServerProcess, start_server


def address(replica: ServerProcess) -> str:
    return f"127.0.0.1:{replica.port}"


@dataclass
class Fleet:
    nginx_program: str
    root: Path
    repository: Path
    shutdown_delay_s: float
    endpoint_lag_s: float = 1.0
    max_fails: int = 0  # nginx's passive health check off, like kube-proxy
    extra_args: Sequence[str] = ("--models", "tiny-sentiment")
    members: list[ServerProcess] = field(default_factory=list)
    started: list[ServerProcess] = field(default_factory=list)
    #: when each replica was sent its signal, and when it left the upstream list
    signalled_at: dict[str, float] = field(default_factory=dict)
    left_at: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    #: (time.monotonic(), what happened), for a failing test to show
    events: list[tuple[float, str]] = field(default_factory=list)
    _nginx: LoadBalancer | None = None

    @property
    def nginx(self) -> LoadBalancer:
        if self._nginx is None:
            raise RuntimeError("Fleet.start() first")
        return self._nginx

    def start(self, replicas: int) -> None:
        """Start ``replicas`` replicas and nginx in front of them."""
        self.members = [self.start_replica() for _ in range(replicas)]
        self._nginx = LoadBalancer(self.nginx_program, self.root / "nginx",
                                   [address(m) for m in self.members], max_fails=self.max_fails)

    def start_replica(self) -> ServerProcess:
        """Start a replica and wait until its readiness probe passes (it has not joined yet)."""
        replica = start_server(self.repository, extra_args=[
            *self.extra_args, "--shutdown-delay-s", str(self.shutdown_delay_s)])
        self.started.append(replica)
        self.events.append((time.monotonic(), f"{address(replica)} started"))
        deadline = time.monotonic() + 30.0
        while httpx.get(f"{replica.url}/v2/health/ready", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica never ready:\n{replica.log()}")
            time.sleep(0.05)
        return replica

    def _route(self, what: str) -> None:
        self.events.append((time.monotonic(), f"reloading nginx: {what}"))
        self.nginx.set_upstreams([address(m) for m in self.members])
        self.events.append((time.monotonic(), "nginx reloaded"))

    def join(self, replica: ServerProcess) -> None:
        self.members.append(replica)
        self._route(f"{address(replica)} joins")

    def leave(self, replica: ServerProcess) -> None:
        self.members.remove(replica)
        self._route(f"{address(replica)} leaves")
        self.left_at[address(replica)] = time.monotonic()

    def stop_replica(self, replica: ServerProcess, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal a member, drop it from the upstream list after the endpoint lag, await its exit."""
        replica.process.send_signal(sig)
        self.signalled_at[address(replica)] = signalled = time.monotonic()
        self.events.append((signalled, f"{sig.name} to {address(replica)}"))
        # the endpoints controller's propagation delay: part of the scenario, not a wait on it
        time.sleep(max(0.0, signalled + self.endpoint_lag_s - time.monotonic()))
        self.leave(replica)
        code = replica.process.wait(timeout=self.shutdown_delay_s + 40.0)
        self.exit_codes[address(replica)] = code
        self.events.append((time.monotonic(), f"{address(replica)} exited {code}"))
        return code

    def rolling_update(self) -> None:
        for old in list(self.members):
            self.join(self.start_replica())
            self.stop_replica(old)

    def close(self) -> None:
        if self._nginx is not None:
            self._nginx.stop()
        for replica in self.started:
            if replica.process.poll() is None:
                replica.process.kill()
                try:
                    replica.process.wait(10)
                except subprocess.TimeoutExpired:  # pragma: no cover - the kernel owes us this
                    pass
