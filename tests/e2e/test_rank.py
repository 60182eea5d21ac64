"""``/v1/models/movie-ranker/rank`` and KServe v2 on a real ``sluice serve`` with a smoke-built ranker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests.support.server_process import ServerProcess, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.ranker.build import build_ranker

    root: Path = tmp_path_factory.mktemp("ranker-repo")
    build_ranker(root / "movie-ranker", "smoke")
    return root


@pytest.fixture(scope="module")
def ranker_server(repo: Path) -> Iterator[ServerProcess]:
    server = start_server(repo, extra_args=["--shutdown-delay-s", "0"])
    try:
        yield server
    finally:
        server.stop()


def test_rank_sorts_candidates_and_matches_v2(ranker_server: ServerProcess, repo: Path) -> None:
    items = list(range(1, 1001))
    with httpx.Client(base_url=ranker_server.url, timeout=30) as c:
        r = c.post("/v1/models/movie-ranker/rank", json={"user_id": 196, "item_ids": items})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["model_name"] == "movie-ranker" and doc["model_version"] == "1"
        scores = [x["score"] for x in doc["items"]]
        assert sorted(x["item_id"] for x in doc["items"]) == items
        assert scores == sorted(scores, reverse=True)
        top = c.post("/v1/models/movie-ranker/rank",
                     json={"user_id": 196, "item_ids": items, "top_k": 10}).json()["items"]
        assert top == doc["items"][:10]
        schema = c.get("/openapi.json").json()
        assert "/v1/models/{model}/rank" in schema["paths"]

    by_item = {x["item_id"]: x["score"] for x in doc["items"]}
    users = np.load(repo / "movie-ranker" / "1" / "user_features.npy")
    genres = np.load(repo / "movie-ranker" / "1" / "item_features.npy")
    ids = np.array(items[:300], dtype=np.int64)
    feed = {"user": np.full(300, 196), "item": ids, "occupation": np.full(300, users[196, 0]),
            "age": np.full(300, users[196, 1]), "gender": np.full(300, users[196, 2])}
    client = triton.InferenceServerClient(url=f"127.0.0.1:{ranker_server.port}")
    inputs = []
    for name, arr in feed.items():
        inp = triton.InferInput(name, [300], "INT64")
        inp.set_data_from_numpy(arr.astype(np.int64), binary_data=True)
        inputs.append(inp)
    g = triton.InferInput("genres", [300, genres.shape[1]], "FP32")
    g.set_data_from_numpy(genres[ids].astype(np.float32), binary_data=True)
    inputs.append(g)
    out = client.infer("movie-ranker", inputs).as_numpy("score")
    assert out is not None
    np.testing.assert_allclose(out, [by_item[i] for i in ids.tolist()], rtol=1e-5, atol=1e-6)


def test_rank_refuses_unknown_ids_and_too_many_candidates(ranker_server: ServerProcess) -> None:
    with httpx.Client(base_url=ranker_server.url, timeout=30) as c:
        r = c.post("/v1/models/movie-ranker/rank", json={"user_id": 196, "item_ids": [1, 99999]})
        assert r.status_code == 400
        assert "item_ids" in r.text and "99999" in r.text
        r = c.post("/v1/models/movie-ranker/rank", json={"user_id": 5000, "item_ids": [1]})
        assert r.status_code == 400 and "user_id" in r.text and "5000" in r.text
        r = c.post("/v1/models/movie-ranker/rank",
                   json={"user_id": 196, "item_ids": list(range(1, 1002))})
        assert r.status_code == 413 and "max_candidates" in r.text
        r = c.post("/v1/models/movie-ranker/rank", json={"user_id": 196, "item_ids": ["x"]})
        assert r.status_code == 400 and "item_ids[0]" in r.text
        r = c.post("/v1/models/movie-ranker/rank", json={"user_id": 196, "item_ids": [1, 2**63]})
        assert r.status_code == 400 and "item_ids" in r.text


def test_rank_access_line_and_server_timing_carry_stages_and_version(
    ranker_server: ServerProcess,
) -> None:
    with httpx.Client(base_url=ranker_server.url, timeout=30) as c:
        r = c.post("/v1/models/movie-ranker/rank", headers={"X-Request-ID": "e2e-rank-1"},
                   json={"user_id": 196, "item_ids": list(range(1, 701)), "top_k": 5})
        assert r.status_code == 200, r.text
    timing = dict(re.findall(r"([a-z]+);dur=(\d+\.\d+)", r.headers["server-timing"]))
    assert set(timing) == {"queue", "prepare", "compute", "total"}
    assert 0 < float(timing["compute"]) <= float(timing["total"])
    marker = '"request_id":"e2e-rank-1"'
    line = json.loads(ranker_server.wait_for_line(lambda text: marker in text))
    assert (line["path"], line["model"], line["version"], line["status"]) == (
        "/v1/models/{model}/rank", "movie-ranker", "1", 200)
    assert 0 < line["compute_us"] <= line["total_us"]
    assert 0 <= line["queue_us"] <= line["total_us"] and line["prepare_us"] >= 0
    # 700 candidates in parts of 256: the largest batch it ran in held at least one part
    assert 256 <= line["batch_size"] <= 4096


def test_locust_recommendation_scenario_runs_headless(ranker_server: ServerProcess) -> None:
    exe = shutil.which("locust") or str(Path(sys.executable).with_name("locust"))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [exe, "-f", str(root / "loadtests" / "locust_rank.py"), "--headless", "--only-summary",
         "--host", ranker_server.url, "-u", "2", "-r", "2", "-t", "3s", "--think-time", "0.05",
         "--p99-ms", "10000", "--max-failure-ratio", "0"],
        capture_output=True, text=True, timeout=60, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stdout + done.stderr
    assert "rank 50-1000" in summary and "0(0.00%)" in summary


def test_rank_bench_reports_the_shared_and_pinned_variants(
    ranker_server: ServerProcess, repo: Path, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]

    def bench(*args: str) -> str:
        report = tmp_path / "rank_bench.md"
        done = subprocess.run(
            [sys.executable, "-m", "loadtests.rank_bench", "--repository", str(repo),
             "--seconds", "0.3", "--workers", "2", "--candidates", "100", "--report",
             str(report), *args],
            capture_output=True, text=True, timeout=120, cwd=root,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert report.read_text(encoding="utf-8").endswith(done.stdout)
        return done.stdout

    shared = bench("--url", ranker_server.url, "--variants", "shared")
    assert "**shared**" in shared and "binary v2 at saturation (2 clients)" in shared
    assert "server CPU" not in shared  # a server it did not start: no CPU of its own to read
    pinned = bench("--variants", "pinned")  # starts its own server, on CPU 0
    if len(os.sched_getaffinity(0)) >= 2:
        assert "server on CPU [" in pinned and "server CPU at saturation, /rank JSON" in pinned
    else:
        assert "skipped" in pinned
