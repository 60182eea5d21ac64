"""Resolving a future at most once: the only way the scheduler sets a result or an error.

As in Ray Serve's batching, a future may already be done when its answer arrives (its caller
cancelled it, or a deadline answered it first), so every answer goes through these helpers,
which leave a done future alone.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def set_result_if_not_done(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)


def set_exception_if_not_done(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
