"""The floor benchmark end to end, very short: the bare ASGI floor and sluice on the null engine."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from loadtests.floor_bench import build_parser, main
from loadtests.floor_load import FLOOR_BODY, process_cpu_s


def test_quick_floor_bench_measures_every_point(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    reports = sorted(tmp_path.glob("floor-*.json"))
    assert len(reports) == 1 and reports[0].with_suffix(".md").is_file()
    doc = orjson.loads(reports[0].read_bytes())
    assert set(doc["points"]) == {
        "floor floor c=8", "sluice-null classify c=8", "sluice-null infer-json c=8",
        "sluice-null infer-binary c=8", "sluice-null classify c=1"}
    for key, point in doc["points"].items():
        assert point["errors"] == 0 and not point["bad_answers"], key
        assert point["req_per_s"]["median"] > 0, key
        assert point["server_cpu_us_per_req"]["median"] > 0, key
    routes = ("classify", "infer-json", "infer-binary")
    assert set(doc["ratios"]) == {f"{r} / floor req/s (c=8)" for r in routes} | {
        f"{r} / floor by CPU per request (c=8)" for r in routes}
    assert "| ratio |" in reports[0].with_suffix(".md").read_text()


def test_defaults_are_the_documented_run() -> None:
    args = build_parser().parse_args([])
    assert (args.reps, args.duration, args.concurrency) == (3, 3.0, 64)
    assert args.real_repository is None


def test_process_cpu_counts_this_process() -> None:
    before = process_cpu_s(os.getpid())
    sum(i * i for i in range(300_000))
    assert process_cpu_s(os.getpid()) > before
    assert FLOOR_BODY.startswith(b"{")
