"""uvicorn's httptools protocol with deadlines and limits for slow or oversized request heads.

uvicorn has a keep-alive timeout but no deadline for reading a request: a client that sends
half a request line, trickles headers a byte every few seconds or stops half-way through its
body holds its socket (and, past ``limit_concurrency``, everyone's capacity) forever.
``SluiceHttpProtocol`` extends ``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol``
(the fast parser uvicorn uses here; chosen through uvicorn's ``http=`` config) with:

- a head deadline (``header_timeout_s``): from the connection's start, or from the first byte
  of a kept-alive connection's next request, to the end of its headers; past it: 408, close;
- a body deadline (``body_timeout_s``): from the end of the headers to the end of the body;
  past it: 408 (unless the answer has started), close; the app sees a disconnect;
- a head size limit (``max_header_bytes``) and a header count limit (``max_header_count``):
  past either: 431, close;
- uvicorn's ``limit_concurrency`` answer made a JSON 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
BUSY_BODY = orjson.dumps({"error": "server busy: too many connections and requests in flight "
                                   "(max_connections); retry later"})


@dataclass(frozen=True)
class ReadLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100


class _HeadTooLarge(Exception):
    pass


async def json_service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", b"%d" % len(BUSY_BODY)),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": BUSY_BODY, "more_body": False})


class SluiceHttpProtocol(HttpToolsProtocol):
    """See the module's docstring; ``limits`` is set on the subclass ``protocol_class`` makes."""

    limits = ReadLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._header_count = 0
        self._parsed_head = 0

    # ---- deadlines ---------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        limit = (self.limits.header_timeout_s if what == "head"
                 else self.limits.body_timeout_s)
        started = self.cycle is not None and what == "body" and self.cycle.response_started
        self.logger.debug("closing %s: request %s not received within %.1f s", self.client,
                          what, limit)
        name = "header_timeout_s" if what == "head" else "body_timeout_s"
        if not started:
            self._reject(408, f"request {what} not received within {limit:g} s ({name})")
        else:
            self.transport.close()

    def _reject(self, status: int, message: str) -> None:
        body = orjson.dumps({"error": message})
        self.transport.write(b"".join([
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n", body]))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser rejects, as JSON like every other error."""
        if not self.transport.is_closing():
            self._reject(400, f"malformed HTTP request: {msg}")

    # ---- uvicorn's hooks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        self._parsed_head = 0
        self._arm(self.limits.header_timeout_s, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as e:
            if isinstance(e.__context__, _HeadTooLarge) or isinstance(e, _HeadTooLarge):
                self._reject(431, str(e.__context__ or e))
                return
            self.logger.debug("invalid HTTP request from %s: %s", self.client, e)
            self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._reject(431, f"request head: more than {self.limits.max_header_bytes} "
                                  "bytes (max_header_bytes)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head, self._head_bytes, self._header_count = True, 0, 0
            self._parsed_head = 0
            self._arm(self.limits.header_timeout_s, "head")

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise _HeadTooLarge(f"request head: more than {self.limits.max_header_count} "
                                "headers (max_header_count)")
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, n: int) -> None:
        """Parsed head bytes (a head that arrives whole is not counted in data_received)."""
        self._parsed_head += n
        if self._parsed_head > self.limits.max_header_bytes:
            raise _HeadTooLarge(f"request head: more than {self.limits.max_header_bytes} "
                                "bytes (max_header_bytes)")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.limits.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if app is service_unavailable:
            app = json_service_unavailable
        super()._start_asgi_task(cycle, app)


def protocol_class(limits: ReadLimits) -> type[SluiceHttpProtocol]:
    """A ``SluiceHttpProtocol`` with these limits, for ``uvicorn.Config(http=...)``."""
    return type("SluiceHttpProtocol", (SluiceHttpProtocol,), {"limits": limits})
