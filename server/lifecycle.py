"""Where the process is in its life, and what a shutdown signal does to it.

``SERVING`` -> ``LAME_DUCK`` -> ``DRAINING``. On SIGTERM (what an orchestrator sends) the server
turns not-ready at once but keeps its listener open and keeps serving for ``shutdown_delay_s``,
so load balancers that still route to it (endpoint removal is asynchronous) see readiness fail
and move their traffic before a single connection is refused. Then it drains: stops accepting,
finishes what is queued and in flight, closes its engines, exits 0. SIGINT (a person's Ctrl-C)
skips the lame duck; a second signal of either kind exits at once.

During the lame duck, kept-alive connections are moved off this process without racing a
request: each response carries ``Connection: close`` and a connection closes after it, and one
idle for ``IDLE_CLOSE_S`` with no bytes waiting is closed (a proxy's pooled connection, or a
client's behind kube-proxy, otherwise stays pinned to this process until its listener is gone).

Pure state and decisions, driven by the server's ticks with an injected clock, so it is tested
without signals or sockets.
"""

from __future__ import annotations

import array
import enum
import fcntl
import signal
import termios
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: A connection with no request for this long during the lame duck is closed.
IDLE_CLOSE_S = 1.0
#: After the drain, how long responses already computed may take to be written out.
WRITE_MARGIN_S = 5.0


class Phase(enum.Enum):
    SERVING = "serving"
    LAME_DUCK = "lame duck"  # not ready, still serving, sending Connection: close
    DRAINING = "draining"  # not accepting; finishing queued and running work


class Action(enum.Enum):
    LAME_DUCK = "lame duck"  # keep serving until drain_due()
    DRAIN = "drain"  # drain now
    EXIT_NOW = "exit now"  # a second signal: leave without draining


@dataclass
class Lifecycle:
    """The process's phase; moved by the server's signal handler and ticks, read by the routes."""

    shutdown_delay_s: float = 0.0
    clock: Callable[[], float] = time.monotonic
    phase: Phase = Phase.SERVING
    drain_at: float | None = None

    @property
    def ready(self) -> bool:
        """Whether readiness may answer 200 (the models decide the rest)."""
        return self.phase is Phase.SERVING

    @property
    def draining(self) -> bool:
        """Whether new inference is refused."""
        return self.phase is Phase.DRAINING

    def on_signal(self, sig: int) -> Action:
        if self.phase is not Phase.SERVING:
            return Action.EXIT_NOW
        self.phase = Phase.LAME_DUCK
        delay = self.shutdown_delay_s if sig == signal.SIGTERM else 0.0
        self.drain_at = self.clock() + delay
        return Action.LAME_DUCK if delay > 0 else Action.DRAIN

    def drain_due(self) -> bool:
        return (self.phase is Phase.LAME_DUCK and self.drain_at is not None
                and self.clock() >= self.drain_at)

    def begin_drain(self) -> None:
        self.phase = Phase.DRAINING


def unread_bytes(transport: Any) -> int:
    """Bytes received on a connection's socket that the server has not read yet; 1 when that
    cannot be told, so the connection counts as busy."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 1
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except (OSError, ValueError):
        return 1
    return int(count[0])


@dataclass
class ConnectionCloser:
    """Moves kept-alive connections off a process in its lame duck.

    Works on uvicorn's HTTP protocol objects: ``cycle`` (the current request, or None before the
    first), its ``response_complete`` and ``keep_alive``, ``transport``, and ``shutdown()``
    (closes an idle connection, or makes a busy one close after its response).
    """

    clock: Callable[[], float] = time.monotonic
    idle_close_s: float = IDLE_CLOSE_S
    unread: Callable[[Any], int] = unread_bytes
    _idle_since: dict[Any, tuple[object, float]] = field(default_factory=dict)

    def tick(self, connections: Iterable[Any]) -> int:
        """Mark busy connections to close after their response; close long-idle ones.

        Returns how many idle connections it closed.
        """
        now = self.clock()
        seen: dict[Any, tuple[object, float]] = {}
        closed = 0
        for conn in connections:
            cycle = getattr(conn, "cycle", None)
            if cycle is not None and not cycle.response_complete:
                conn.shutdown()  # busy: its response says Connection: close, then it closes
                continue
            same, since = self._idle_since.get(conn, (cycle, now))
            if same is not cycle:  # a request came and went since the last tick
                since = now
            if now - since >= self.idle_close_s and self.unread(conn.transport) == 0:
                conn.shutdown()
                closed += 1
            else:
                seen[conn] = (cycle, since)
        self._idle_since = seen
        return closed
