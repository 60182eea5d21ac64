"""Run a call under a memory and time bound, and say what it did.

The bound is what a decoder may spend on a body it has not yet rejected: a small multiple of
the body's size plus a constant. ``tracemalloc`` sees Python objects and NumPy buffers (NumPy
reports its allocations to it); ``RLIMIT_AS`` is the safety net that turns a multi-gigabyte
allocation into a ``MemoryError`` instead of swapping the shared CI machine.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: Extra address space a single decode may map before it fails with MemoryError.
ADDRESS_SPACE_MARGIN = 1 << 30
#: Bytes a decode may allocate per body byte, plus a constant.
BYTES_PER_BODY_BYTE = 64
CONSTANT_BYTES = 4 << 20
MAX_SECONDS = 2.0
#: Python frames a request handler may still use in the server: CPython's default limit (1000)
#: less what uvicorn, starlette and FastAPI stack above the route (about 100). Hypothesis
#: raises the recursion limit while a test runs; the server never does.
SERVER_FRAMES_LEFT = 900


@dataclass
class Outcome:
    result: Any
    error: BaseException | None
    peak_bytes: int
    seconds: float


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


@contextlib.contextmanager
def server_recursion_limit() -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(_depth() + SERVER_FRAMES_LEFT)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@contextlib.contextmanager
def address_space_limit(margin: int = ADDRESS_SPACE_MARGIN) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + margin
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def bounded(call: Callable[[], Any]) -> Outcome:
    """Run ``call`` once; never raises (the exception is in the outcome)."""
    tracemalloc.start()
    start = time.perf_counter()
    result: Any = None
    error: BaseException | None = None
    try:
        with address_space_limit(), server_recursion_limit():
            result = call()
    except Exception as e:  # RecursionError, MemoryError included
        error = e
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return Outcome(result, error, peak, seconds)


def allowed_bytes(body_size: int) -> int:
    return BYTES_PER_BODY_BYTE * body_size + CONSTANT_BYTES
