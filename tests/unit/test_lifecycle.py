"""The shutdown state machine and the lame duck's connection closing, on an injected clock."""

from __future__ import annotations

import signal
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from server.http_server import only_metrics
from server.lifecycle import Action, ConnectionCloser, Lifecycle, Phase, unread_bytes
from server.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sigterm_starts_a_lame_duck_that_ends_after_the_delay() -> None:
    clock = Clock()
    life = Lifecycle(shutdown_delay_s=5.0, clock=clock)
    assert life.ready and not life.draining
    assert life.on_signal(signal.SIGTERM) is Action.LAME_DUCK
    assert life.phase is Phase.LAME_DUCK and not life.ready and not life.draining
    clock.now += 4.9
    assert not life.drain_due()
    clock.now += 0.1
    assert life.drain_due()
    life.begin_drain()
    assert life.draining and not life.ready and not life.drain_due()


@pytest.mark.parametrize(("sig", "delay"), [(signal.SIGINT, 5.0), (signal.SIGTERM, 0.0)])
def test_sigint_or_no_delay_drains_at_once(sig: int, delay: float) -> None:
    life = Lifecycle(shutdown_delay_s=delay, clock=Clock())
    assert life.on_signal(sig) is Action.DRAIN
    assert not life.ready and life.drain_due()


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_exits_now(second: int) -> None:
    life = Lifecycle(shutdown_delay_s=5.0, clock=Clock())
    life.on_signal(signal.SIGTERM)
    assert life.on_signal(second) is Action.EXIT_NOW
    life.begin_drain()
    assert life.on_signal(second) is Action.EXIT_NOW


@dataclass
class Cycle:
    response_complete: bool = True
    keep_alive: bool = True


@dataclass
class Conn:
    """The parts of uvicorn's HTTP protocol object that ConnectionCloser uses."""

    cycle: Cycle | None = None
    unread: int = 0
    shutdowns: int = 0
    transport: Any = field(default=None)

    def __post_init__(self) -> None:
        self.transport = self

    def shutdown(self) -> None:  # uvicorn: close if idle, else close after the response
        self.shutdowns += 1
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    __hash__ = object.__hash__


def closer(clock: Clock) -> ConnectionCloser:
    return ConnectionCloser(clock=clock, idle_close_s=1.0, unread=lambda t: int(t.unread))


def test_busy_connections_close_after_their_response() -> None:
    busy = Conn(Cycle(response_complete=False))
    assert closer(Clock()).tick([busy]) == 0
    assert busy.cycle is not None and busy.cycle.keep_alive is False


def test_idle_connections_close_after_a_quiet_second() -> None:
    clock, fresh, used = Clock(), Conn(None), Conn(Cycle())
    c = closer(clock)
    assert c.tick([fresh, used]) == 0
    clock.now += 0.5
    assert c.tick([fresh, used]) == 0
    clock.now += 0.5
    assert c.tick([fresh, used]) == 2
    assert fresh.shutdowns == used.shutdowns == 1


def test_a_request_between_ticks_restarts_the_quiet_second() -> None:
    clock, conn = Clock(), Conn(Cycle())
    c = closer(clock)
    c.tick([conn])
    clock.now += 0.9
    conn.cycle = Cycle()  # a request came and was answered
    c.tick([conn])
    clock.now += 0.9
    assert c.tick([conn]) == 0
    clock.now += 0.1
    assert c.tick([conn]) == 1


def test_bytes_waiting_keep_a_connection_open() -> None:
    clock, conn = Clock(), Conn(Cycle(), unread=120)
    c = closer(clock)
    c.tick([conn])
    clock.now += 2
    assert c.tick([conn]) == 0 and conn.shutdowns == 0
    conn.unread = 0
    assert c.tick([conn]) == 1


class SocketTransport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


def test_unread_bytes_counts_what_the_socket_holds() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert unread_bytes(SocketTransport(b)) == 0
        a.sendall(b"GET / HTTP/1.1\r\n")
        assert unread_bytes(SocketTransport(b)) == 16
    assert unread_bytes(SocketTransport(b)) == 1  # closed: cannot tell, so counted busy


async def test_metrics_port_app_answers_only_metrics() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"metrics"})

    transport = httpx.ASGITransport(app=only_metrics(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
        assert (await client.get("/metrics")).text == "metrics"
        r = await client.get("/v2/health/ready")
        assert r.status_code == 404 and "only /metrics" in r.json()["error"]


def test_settings_bound_the_new_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_SHUTDOWN_DELAY_S", raising=False)
    monkeypatch.delenv("SLUICE_METRICS_PORT", raising=False)
    assert (Settings().shutdown_delay_s, Settings().metrics_port) == (5.0, 0)
    monkeypatch.setenv("SLUICE_SHUTDOWN_DELAY_S", "2.5")
    monkeypatch.setenv("SLUICE_METRICS_PORT", "8002")
    assert (Settings().shutdown_delay_s, Settings().metrics_port) == (2.5, 8002)
    with pytest.raises(ValidationError, match="shutdown_delay_s"):
        Settings.model_validate({"shutdown_delay_s": -1})
    with pytest.raises(ValidationError, match="metrics_port"):
        Settings.model_validate({"metrics_port": 70000})
    with pytest.raises(ValidationError, match="already the HTTP port"):
        Settings.model_validate({"metrics_port": 8000, "port": 8000})
