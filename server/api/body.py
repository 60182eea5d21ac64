"""Reading bodies under a size limit, and dropping work when the client goes away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from server.errors import PayloadTooLarge, RequestCancelled

T = TypeVar("T")
log = logging.getLogger("sluice")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes; the limit is {limit} (max_request_bytes)")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body: more than {limit} bytes (max_request_bytes)")
            chunks.append(chunk)
    except ClientDisconnect:
        client = request.client
        log.debug("client %s:%s disconnected after %d body bytes of %s", *(client or ("?", 0)),
                  size, request.url.path)
        raise RequestCancelled("client disconnected while sending the body") from None
    return b"".join(chunks)


async def read_raw_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """:func:`read_body` on the bare ASGI scope (the hot routes): the same limits and errors."""
    declared = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            declared = value.decode("latin-1")
            break
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes; the limit is {limit} (max_request_bytes)")
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the whole body at once: the usual case
        if len(body) > limit:
            raise PayloadTooLarge(f"body: more than {limit} bytes (max_request_bytes)")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            client = scope.get("client")
            log.debug("client %s:%s disconnected after %d body bytes of %s",
                      *(client or ("?", 0)), size, scope["path"])
            raise RequestCancelled("client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: more than {limit} bytes (max_request_bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


OFF_LOOP_BYTES = 64 * 1024
"""Bodies larger than this are decoded in a worker thread: decoding 8 MiB of tensors can take
most of a second (bounded by the limits: 2 M empty BYTES elements take 0.8 s), and the event
loop must keep serving meanwhile."""


async def off_the_loop(size: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``: at once for a small body, in a worker thread for a large one."""
    if size <= OFF_LOOP_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


async def _disconnected(receive: Receive) -> None:
    while True:  # returns on the first disconnect message; other messages are body parts
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (its queued request is dropped).

    Call only after the body has been read: the next ASGI message is then the disconnect. The
    work runs in the calling task; one watcher task waits for the disconnect and cancels the
    calling task (the cancellation is then turned into ``RequestCancelled``), and is cancelled
    itself as soon as the work ends, before the caller can await anything else.
    """
    task = asyncio.current_task()
    assert task is not None, "unless_disconnected needs a running task"
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        result = await work
        if gone:  # the work swallowed the cancellation: take it back all the same
            task.uncancel()
        return result
    except asyncio.CancelledError:
        if gone:  # our own cancellation, thrown at the await: consumed here
            task.uncancel()
            raise RequestCancelled("client disconnected before the request was computed") from None
        raise
    finally:
        watcher.cancel()
