"""The priority demonstration script runs both phases against a real server (figures not judged)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import priority
from tests.support.server_process import ServerProcess, start_server

MODEL = "tiny-priority"


@pytest.fixture(scope="module")
def server(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("priority-repo")
    shutil.copytree(tiny_repository / "tiny-sentiment", root / MODEL)
    config = root / MODEL / "config.yaml"
    config.write_text(config.read_text().replace("max_queue_size: 64", "max_queue_size: 512")
                      + "  priority_levels: 2\n  default_priority_level: 2\n")
    proc = start_server(root, env={"SLUICE_ACCESS_LOG": "false"})
    yield proc
    proc.stop()


async def test_both_phases_probe_and_flood(server: ServerProcess) -> None:
    args = priority.build_parser().parse_args(
        ["--url", server.url, "--model", MODEL, "--clients", "4", "--seconds", "0.5",
         "--warmup-seconds", "0.2", "--probe-interval-ms", "20"])
    phases = await priority.main_async(args)
    assert [p.probe_priority for p in phases] == [1, 2]
    for phase in phases:
        assert phase.probes.count > 0 and phase.probe_errors == 0
        assert phase.flood_texts_per_s > 0 and set(phase.flood_statuses) <= {200, 429}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        priority.main(["--model", "m", "--clients", "0"])
