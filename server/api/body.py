"""Reading bodies under a size limit, and dropping work when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request

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


OFF_LOOP_BYTES = 64 * 1024
"""Bodies larger than this are decoded in a worker thread: decoding 8 MiB of tensors can take
most of a second (bounded by the limits: 2 M empty BYTES elements take 0.8 s), and the event
loop must keep serving meanwhile."""


async def off_the_loop(size: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``: at once for a small body, in a worker thread for a large one."""
    if size <= OFF_LOOP_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


async def _disconnected(request: Request) -> None:
    while True:  # returns on the first disconnect message; other messages are body parts
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (its queued request is dropped).

    Call only after the body has been read: the next ASGI message is then the disconnect.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise RequestCancelled("client disconnected before the request was computed")
