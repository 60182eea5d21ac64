"""A minimal HTTP/1.1 keep-alive client on asyncio streams.

The load generator shares two cores with the server it measures, so every microsecond it
spends is taken from the server. This client does only what the benchmark needs: POST or GET
with a prebuilt body on one persistent connection, a status code and a body back. No redirects,
no TLS, no pooling policy (the caller owns one connection per worker).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


class HttpError(Exception):
    """The connection broke or the response was not valid HTTP/1.1."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


def split_url(url: str) -> tuple[str, int]:
    """``http://host:port`` -> (host, port)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only plain http://host:port URLs are supported, got {url!r}")
    return parts.hostname, parts.port or 80


class Connection:
    """One keep-alive connection; reconnects transparently after the server closes it."""

    def __init__(self, host: str, port: int, headers: bytes = b"") -> None:
        """``headers``: extra header lines sent with every request (``b"Name: value\\r\\n"``)."""
        self._host = host
        self._port = port
        self._host_header = f"{host}:{port}".encode()
        self._extra = headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        reader, writer = await self._connect()
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method.encode(), path.encode(), self._host_header, self._extra)
        if body or method == "POST":
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        writer.write(head + b"\r\n" + body)
        try:
            response = await _read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError) as e:
            await self.close()
            raise HttpError(f"connection failed: {e!r}") from e
        except BaseException:
            # Cancelled or timed out mid-response: the stream position is unknown, start afresh.
            await self.close()
            raise
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


async def _read_response(reader: asyncio.StreamReader) -> Response:
    raw_head = await reader.readuntil(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as e:
        raise HttpError(f"bad status line {lines[0]!r}") from e
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        raise HttpError("response without Content-Length or chunked encoding")
    return Response(status, body, headers)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # trailers are not supported; the empty line ends
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
