"""The whole benchmark, end to end and very short, on the tiny model."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadtests.bench import build_parser, main
from tests.loadtests.conftest import TINY_MODEL
from tests.loadtests.test_locust_headless import SLUICE_SERVE_READY


def _bench(tiny_repository: Path, out: Path, targets: str,
           *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["--quick", "--model-repository", str(tiny_repository), "--model", TINY_MODEL,
                 "--targets", targets, "--concurrency", "1,4", "--duration", "0.5",
                 "--warmup", "0.2", "--threads", "1", "--out", str(out), *extra])
    reports = sorted(out.glob("bench-*.json"))
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    return code, orjson.loads(reports[0].read_bytes())


def test_parser_defaults_match_the_documented_run() -> None:
    args = build_parser().parse_args([])
    assert args.concurrency == [1, 8, 32, 128]
    assert args.shapes == ["chat", "batch"] and args.targets == ["ceiling", "naive", "sluice"]
    assert args.duration == 10.0 and args.model == "airline-sentiment"
    assert args.repeat == 1 and args.variants == ["default"] and args.targets_profile == "auto"
    assert args.version is None
    for bad in (["--targets", "nginx"], ["--variants", "tls"], ["--targets-profile", "fast"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def test_quick_bench_ceiling_and_naive_repeated(tiny_repository: Path, tmp_path: Path) -> None:
    code, report = _bench(tiny_repository, tmp_path, "ceiling,naive", "--repeat", "2",
                          "--shapes", "chat", "--targets-profile", "student")
    assert code == 0
    rows = {(r["target"], r["shape"], r["mode"], r["concurrency"]) for r in report["results"]}
    assert {("ceiling", p, "offline", 1) for p in ("arrival-order", "length-sorted", "batch-1")} <= rows
    assert {("naive", "chat", "closed", 1), ("naive", "chat", "closed", 4),
            ("naive", "chat", "open", 0)} <= rows
    # Two rounds, interleaved: ceiling, naive, then naive, ceiling; every point measured twice.
    rounds = [(r["target"], r["extra"]["round"]) for r in report["runs"]]
    assert list(dict.fromkeys(rounds)) == [("ceiling", 0), ("naive", 0), ("naive", 1), ("ceiling", 1)]
    assert len(report["runs"]) == 2 * len(report["results"])
    for r in report["results"]:
        runs = r["extra"]["texts_per_s_runs"]
        assert r["extra"]["repeats"] == 2 and len(runs) == 2
        assert min(runs) <= r["texts_per_s"] <= max(runs)
        assert r["extra"]["spread"] == pytest.approx((max(runs) - min(runs)) / r["texts_per_s"])
        if r["target"] == "naive":
            assert r["errors"] == 0 and r["texts"] > 0
            assert r["generator_cpu"] > 0 and r["server_cpu"] is not None
    opened = [r for r in report["runs"] if r["mode"] == "open"]
    assert len({r["offered_rate"] for r in opened}) == 1  # both rounds at the same rate
    assert (tmp_path / Path(next(tmp_path.glob("bench-*.png")).name)).is_file()
    assert report["meta"]["threads"] == 1 and report["meta"]["repeat"] == 2
    names = {t["name"]: t["passed"] for t in report["targets"]}
    assert names["chat c=32: Sluice / naive texts/s"] is None  # Sluice not measured
    assert set(names) == {"chat: Sluice at saturation / best offline policy",
                          "chat c=1: Sluice / naive texts/s", "chat c=8: Sluice / naive texts/s",
                          "chat c=32: Sluice / naive texts/s", "chat c=32: Sluice p99 / naive p99"}
    md = next(tmp_path.glob("bench-*.md")).read_text()
    assert "2 interleaved repetition(s)" in md and "Best offline policy:" in md


@pytest.mark.e2e
@pytest.mark.skipif(not SLUICE_SERVE_READY, reason="enable when sluice serve is ready")
def test_quick_bench_sluice_variants_on_a_pinned_version(tiny_repository: Path, tmp_path: Path) -> None:
    code, report = _bench(tiny_repository, tmp_path, "sluice", "--variants", "default,auth",
                          "--version", "1", "--protocol", "infer", "--shapes", "chat",
                          "--concurrency", "2", "--open-loop-rate", "0", "--no-plot")
    assert code == 0, report["meta"]["failures"]
    sluice = [r for r in report["results"] if r["target"].startswith("sluice")]
    assert {r["target"] for r in sluice} == {"sluice", "sluice[auth]"}
    # The auth variant sends its key (a 401 would count as an error) to the versioned v2 path.
    assert all(r["texts"] > 0 and r["errors"] == 0 for r in sluice)
    assert all(r["mean_batch_size"] is not None and r["server_cpu"] is not None for r in sluice)
    assert report["meta"]["model_version"] == "1" and report["meta"]["profile"] == "other"
    md = next(tmp_path.glob("bench-*.md")).read_text()
    assert "| sluice[auth] | chat | c=2 |" in md and "texts/s vs default" in md
