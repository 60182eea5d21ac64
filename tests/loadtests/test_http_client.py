"""The raw HTTP/1.1 client against scripted loopback servers (exact bytes, no timing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from loadtests.http_client import Connection, HttpError, split_url

Scripted = Callable[[list[bytes]], Awaitable[tuple[list[bytes], int]]]


async def _serve(responses: list[bytes]) -> tuple[asyncio.Server, list[bytes], int]:
    """A server answering each request on a connection with the next scripted response."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while responses:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            requests.append(head + await reader.readexactly(length))
            writer.write(responses.pop(0))
            await writer.drain()
            if b"Connection: close" in requests[-1] or b"connection: close" in head:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, requests, port


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    servers: list[asyncio.Server] = []

    async def make(responses: list[bytes]) -> tuple[list[bytes], int]:
        server, requests, port = await _serve(responses)
        servers.append(server)
        return requests, port

    yield make
    for s in servers:
        s.close()


async def test_keep_alive_content_length_and_chunked(scripted: Scripted) -> None:
    requests, port = await scripted([
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nRetry-After: 1\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
    ])
    conn = Connection("127.0.0.1", port)
    first = await conn.request("POST", "/v1/x", b'{"a":1}')
    second = await conn.request("GET", "/metrics")
    await conn.close()
    assert (first.status, first.body) == (200, b"hello")
    assert (second.status, second.body) == (429, b"abcde")
    assert second.headers["retry-after"] == "1"
    assert len(requests) == 2  # both on one connection
    assert requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")
    assert b"Content-Length: 7\r\n" in requests[0] and requests[0].endswith(b'{"a":1}')


async def test_broken_response_raises_and_reconnects(scripted: Scripted) -> None:
    _, port = await scripted([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
    conn = Connection("127.0.0.1", port)
    with pytest.raises(HttpError):
        await conn.request("GET", "/")
    _, port2 = await scripted([b"garbage\r\n\r\n"])
    with pytest.raises(HttpError):
        await Connection("127.0.0.1", port2).request("GET", "/")


def test_split_url() -> None:
    assert split_url("http://127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert split_url("http://localhost/") == ("localhost", 80)
    with pytest.raises(ValueError):
        split_url("https://x:1")
