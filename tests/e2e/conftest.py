from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server_process import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tiny_repository: Path) -> Iterator[ServerProcess]:
    """One real ``sluice serve`` process on the tiny repository, shared by a test module."""
    proc = start_server(tiny_repository)
    yield proc
    proc.stop()
