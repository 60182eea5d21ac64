"""A real naive reference server process on the tiny model, shared by the load-test tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import servers

TINY_MODEL = "tiny-sentiment"


@pytest.fixture(scope="session")
def naive_url(tiny_repository: Path) -> Iterator[str]:
    port = servers.free_port()
    command = servers.naive_command(tiny_repository, TINY_MODEL, port, threads=1)
    with servers.serve("naive", command, port, servers.thread_env(1), ready_timeout_s=60) as s:
        yield s.url
