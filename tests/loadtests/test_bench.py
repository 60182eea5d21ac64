"""The whole benchmark, end to end and very short, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadtests.bench import build_parser, main
from tests.loadtests.conftest import TINY_MODEL
from tests.loadtests.test_locust_headless import SLUICE_SERVE_READY


def _bench(tiny_repository: Path, out: Path, targets: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["--quick", "--model-repository", str(tiny_repository), "--model", TINY_MODEL,
                 "--targets", targets, "--concurrency", "1,4", "--duration", "0.5",
                 "--warmup", "0.2", "--threads", "1", "--out", str(out)])
    reports = sorted(out.glob("bench-*.json"))
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    return code, orjson.loads(reports[0].read_bytes())


def test_parser_defaults_match_the_documented_run() -> None:
    args = build_parser().parse_args([])
    assert args.concurrency == [1, 8, 32, 128]
    assert args.shapes == ["chat", "batch"] and args.targets == ["ceiling", "naive", "sluice"]
    assert args.duration == 10.0 and args.model == "airline-sentiment"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--targets", "nginx"])


def test_quick_bench_ceiling_and_naive(tiny_repository: Path, tmp_path: Path) -> None:
    code, report = _bench(tiny_repository, tmp_path, "ceiling,naive")
    assert code == 0
    rows = {(r["target"], r["shape"], r["mode"], r["concurrency"]) for r in report["results"]}
    assert ("ceiling", "arrival-order", "offline", 32) in rows
    assert ("ceiling", "batch-1", "offline", 1) in rows
    for shape in ("chat", "batch"):
        assert {("naive", shape, "closed", 1), ("naive", shape, "closed", 4),
                ("naive", shape, "open", 0)} <= rows
    for r in report["results"]:
        if r["target"] == "naive":
            assert r["errors"] == 0 and r["texts"] > 0
            assert r["generator_cpu"] > 0 and r["server_cpu"] is not None
    assert (tmp_path / Path(next(tmp_path.glob("bench-*.png")).name)).is_file()
    assert report["meta"]["threads"] == 1
    names = {t["name"]: t["passed"] for t in report["targets"]}
    assert names["chat c=32: Sluice / naive throughput"] is None  # Sluice not measured


@pytest.mark.e2e
@pytest.mark.skipif(not SLUICE_SERVE_READY, reason="enable when sluice serve is ready")
def test_quick_bench_sluice(tiny_repository: Path, tmp_path: Path) -> None:
    code, report = _bench(tiny_repository, tmp_path, "sluice")
    assert code == 0, report["meta"]["failures"]
    sluice = [r for r in report["results"] if r["target"] == "sluice"]
    assert sluice and all(r["texts"] > 0 for r in sluice)
    # The tiny model's queue holds 64 texts, so batch-shaped load may meet 429 (by design).
    assert all(set(r["error_kinds"]) <= {"http 429"} for r in sluice)
    assert all(r["mean_batch_size"] is not None and r["server_cpu"] is not None for r in sluice)
