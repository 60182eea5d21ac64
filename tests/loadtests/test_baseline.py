"""The baseline check: this tree against a commit checked out in a worktree, interleaved."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from loadtests import baseline, servers
from loadtests.stats import LatencySummary, RunResult
from tests.loadtests.conftest import TINY_MODEL


def _result(label: str, concurrency: int, texts_per_s: float, mode: str = "closed") -> RunResult:
    return RunResult(label, "chat", mode, concurrency, 1.0, 10, 10, 0, texts_per_s, texts_per_s,
                     LatencySummary.of([0.001]))


def test_summary_takes_medians_spreads_and_the_ratio_per_point() -> None:
    runs = {
        "current": [[_result("current", 8, 110.0)], [_result("current", 8, 90.0)],
                    [_result("current", 8, 100.0), _result("current", 0, 1e6, mode="open")]],
        "baseline": [[_result("baseline", 8, 50.0)], [_result("baseline", 8, 40.0)],
                     [_result("baseline", 8, 60.0)]],
    }
    [row] = baseline.summarise(runs)
    assert (row["shape"], row["concurrency"]) == ("chat", 8)
    assert row["current"] == 100.0 and row["baseline"] == 50.0 and row["ratio"] == 2.0
    assert row["current_spread"] == [90.0, 110.0] and row["baseline_spread"] == [40.0, 60.0]
    text = baseline.render([row], {"current": "abc", "baseline": "def", "runs": 3,
                                   "model": "m", "machine": "x"})
    assert "| chat | 8 | 100 (90-110) | 50 (40-60) | 2.000 |" in text


def test_a_point_the_baseline_lacks_is_left_out() -> None:
    runs = {"current": [[_result("current", 1, 10.0), _result("current", 8, 10.0)]],
            "baseline": [[_result("baseline", 1, 5.0)]]}
    assert [r["concurrency"] for r in baseline.summarise(runs)] == [1]


@pytest.mark.e2e
def test_quick_baseline_against_head(tiny_repository: Path, tmp_path: Path) -> None:
    """Two runs of each, alternating order, on the tiny model; the worktree is removed after."""
    before = subprocess.run(["git", "-C", str(servers.REPO_ROOT), "worktree", "list"],
                            capture_output=True, text=True, check=True).stdout
    code = baseline.main(["--commit", "HEAD", "--runs", "2", "--", "--model-repository",
                          str(tiny_repository), "--model", TINY_MODEL, "--shapes", "chat",
                          "--concurrency", "2", "--duration", "0.5", "--warmup", "0.2",
                          "--threads", "1", "--out", str(tmp_path)])
    assert code == 0
    [report] = tmp_path.glob("baseline-*.json")
    doc = orjson.loads(report.read_bytes())
    [row] = doc["rows"]
    assert row["concurrency"] == 2 and row["current"] > 0 and row["baseline"] > 0
    assert doc["meta"]["runs"] == 2
    after = subprocess.run(["git", "-C", str(servers.REPO_ROOT), "worktree", "list"],
                           capture_output=True, text=True, check=True).stdout
    assert after == before
