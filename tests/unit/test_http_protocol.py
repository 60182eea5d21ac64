"""``SluiceHttpProtocol`` in a real uvicorn server on loopback, with a trivial ASGI app."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from server.http_protocol import ReadLimits, protocol_class


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):  # read the whole body, as the routes do
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(limit_concurrency: int | None, limits: ReadLimits) -> Iterator[int]:
    # The socket listens before the server starts, so a client's connection waits in the
    # backlog until uvicorn accepts it: nothing to wait for.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, http=protocol_class(limits), lifespan="off", log_config=None,
                            limit_concurrency=limit_concurrency)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    yield port
    server.should_exit = True
    thread.join(5)
    listener.close()


@pytest.fixture()
def busy_port() -> Iterator[int]:
    yield from serve(1, ReadLimits())  # every request counts its own connection: always busy


@pytest.fixture()
def strict_port() -> Iterator[int]:
    yield from serve(None, ReadLimits(header_timeout_s=1.0, body_timeout_s=1.0))


def answer(s: socket.socket) -> tuple[bytes, dict[str, Any]]:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, json.loads(body)


def test_past_limit_concurrency_the_answer_is_a_json_503_with_retry_after(busy_port: int) -> None:
    with socket.create_connection(("127.0.0.1", busy_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = answer(s)
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
    assert "max_connections" in body["error"]


def test_headers_trickled_past_the_head_deadline_get_408(strict_port: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_port), timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        for byte in b"X-Slow: abcdefghijklmnopqrstuvwxyz":  # a byte every 0.1 s, never done
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        head, body = answer(s)
    assert head.startswith(b"HTTP/1.1 408") and "header_timeout_s" in body["error"]
    assert time.monotonic() - started < 4


def test_a_body_that_stops_half_way_gets_408(strict_port: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        head, body = answer(s)
    assert head.startswith(b"HTTP/1.1 408") and "body_timeout_s" in body["error"]


def test_a_kept_alive_connection_gets_a_fresh_head_deadline(strict_port: int) -> None:
    with socket.create_connection(("127.0.0.1", strict_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET / HTTP/1.1\r\nHo")  # the next request's head, never finished
        head, body = answer(s)
    assert "header_timeout_s" in body["error"]
    assert head.startswith(b"HTTP/1.1 408")
