"""``release_freed_memory`` gives freed heap pages back (glibc), measured on this process."""

from __future__ import annotations

import gc
from pathlib import Path

from server.memory import release_freed_memory


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_fragmented_heap_goes_back_to_the_os() -> None:
    # many small blocks (below the mmap threshold: they live in the heap), every other one
    # kept alive so the freed ones cannot be returned from the top of the heap
    blocks = [bytearray(4096) for _ in range(40_000)]  # ~160 MiB of heap
    keep = blocks[::64]
    del blocks
    gc.collect()
    before = _rss_kib()
    assert release_freed_memory()
    after = _rss_kib()
    assert before - after > 50 * 1024, (before, after)
    del keep
