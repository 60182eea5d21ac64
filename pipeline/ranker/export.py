"""Export the ranker to ONNX (TorchScript exporter, dynamic batch axis) and time it as served."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.ranker.model import INPUT_NAMES, OUTPUT_NAME


def export_onnx(model: Any, path: Path, n_genres: int, *, opset: int = 17) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    b = 4
    ints = torch.ones(b, dtype=torch.int64)
    example = (ints, ints, ints, ints, ints, torch.zeros(b, n_genres))
    axes = {name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    with torch.no_grad():
        torch.onnx.export(
            model, example, str(path), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            dynamic_axes=axes, opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path


def onnx_scorer(path: Path, tables: Any) -> Any:
    """A ``Scorer`` (users, items) -> scores running the ONNX file through the serving engine."""
    from engines.base import EngineSpec
    from engines.onnx_engine import load

    engine = load(EngineSpec(artifact=path, threads=2))

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u = tables.users[users]
        feed = {
            "user": users, "item": items, "occupation": u[:, 0], "age": u[:, 1],
            "gender": u[:, 2], "genres": tables.items[items],
        }  # fmt: skip
        out = []
        for s in range(0, len(users), 8192):
            out.append(engine.run({k: v[s : s + 8192] for k, v in feed.items()})[OUTPUT_NAME])
        return np.concatenate(out)

    return score


def serving_latency_ms(path: Path, folder: Path, counts: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Median ms to score ``n`` candidates for one user through the serving code
    (``server.inference.ranking`` feature gathering + the ONNX Runtime engine)."""
    from engines.base import EngineSpec
    from engines.onnx_engine import load
    from server.inference.ranking import RankingTables

    tables = RankingTables.load(folder)
    engine = load(EngineSpec(artifact=path, threads=2))
    rng = np.random.default_rng(0)
    result = {}
    for n in counts:
        items = rng.integers(1, tables.items.shape[0], size=n)
        times = []
        for r in range(repeats + 3):
            started = time.perf_counter()
            engine.run(tables.gather(196, items))
            if r >= 3:
                times.append(1000 * (time.perf_counter() - started))
        result[f"latency_ms_{n}"] = round(statistics.median(times), 3)
    return result
