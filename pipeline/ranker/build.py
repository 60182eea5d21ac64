"""``sluice build movie-ranker``: train 3 seeds, evaluate against popularity, export ONNX.

Writes ``<repo>/movie-ranker/1/`` (``model.onnx`` fp32 and the feature tables
``user_features.npy`` / ``item_features.npy``), ``config.yaml`` and the model card. The
served model is seed 0's; card figures are means over the seeds. Like every model's, the card
and config hold only what a rebuild reproduces and are rewritten only when that changes; the
latencies and timings of this machine go to ``measured.json`` (pipeline/card.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.catalogue import entry
from pipeline.errors import BuildError
from pipeline.ranker import data as d
from pipeline.ranker import evaluate as ev
from pipeline.ranker.train import RankerSettings, feeds, train
from pipeline.stamp import build_stamp, read_stamp

log = logging.getLogger("sluice.pipeline")

NAME = "movie-ranker"
VERSION = 1
STAMP_FILE = "build/stamp.json"
_HERE = Path(__file__).resolve().parent
WEIGHT_MODULES = ("data.py", "model.py", "train.py", "export.py")


def code_version() -> str:
    h = hashlib.sha256()
    for name in WEIGHT_MODULES:
        h.update(name.encode() + (_HERE / name).read_bytes())
    return h.hexdigest()[:16]


def settings_for(profile: str) -> RankerSettings:
    recipe = entry(NAME).recipe(profile)
    if not isinstance(recipe, RankerSettings):
        raise BuildError(f"{NAME}: the catalogue's recipe is not a ranker's")
    return recipe


def is_built(model_dir: Path) -> bool:
    v = model_dir / str(VERSION)
    return all((v / f).is_file() for f in ("model.onnx", "user_features.npy", "item_features.npy"))


def ranker_stamp(profile: str = "full") -> str:
    """The build stamp of the ranker's recipe for ``profile`` (data, settings, code)."""
    settings = settings_for(profile)
    return build_stamp(d.data_files(), {"model": NAME, "code": code_version(), **settings.as_dict()})


def build_ranker(model_dir: Path, profile: str = "full", force: bool = False) -> Path:
    import torch

    settings = settings_for(profile)
    stamp = ranker_stamp(profile)
    if not force and read_stamp(model_dir / STAMP_FILE) == stamp and is_built(model_dir):
        log.info("%s: up to date (stamp %s), skipping", NAME, stamp[:12])
        return model_dir
    torch.set_num_threads(2)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ratings, features = d.load()
    if settings.user_limit is not None:
        ratings = ratings.take(ratings.user <= settings.user_limit)
    train_r, test_r = d.split_by_time(ratings)
    n_items = features.items.shape[0] - 1
    seen = d.rated_sets(ratings, features.users.shape[0])
    timings["data"] = time.perf_counter() - t
    per_seed: list[dict[str, float]] = []
    pop: list[dict[str, float]] = []
    served: Any = None
    lists0: tuple[np.ndarray, np.ndarray] | None = None
    t = time.perf_counter()
    for seed in settings.seeds:
        users, items, labels = d.training_set(train_r, seen, n_items, settings.negatives_per_positive, seed)
        model = train(features, users, items, labels, settings, seed)
        lists = ev.ranking_lists(test_r, seen, n_items, settings.candidates, seed)
        per_seed.append(ev.evaluate(_torch_scorer(model, features), test_r, *lists))
        pop.append(ev.evaluate(ev.popularity(train_r, n_items), test_r, *lists))
        log.info("%s seed %d: %s (popularity %s)", NAME, seed, per_seed[-1], pop[-1])
        if served is None:
            served, lists0 = model, lists
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    from pipeline.ranker.export import export_onnx, onnx_scorer, serving_latency_ms

    work, version_dir = model_dir / "build", model_dir / str(VERSION)
    for folder in (work, version_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    np.save(version_dir / "user_features.npy", features.users)
    np.save(version_dir / "item_features.npy", features.items)
    onnx_path = export_onnx(served, version_dir / "model.onnx", features.items.shape[1])
    assert lists0 is not None
    fp32 = ev.evaluate(onnx_scorer(onnx_path, features), test_r, *lists0)
    latency = serving_latency_ms(onnx_path, version_dir, (100, 1000), repeats=50)
    variant_note = _try_int8(onnx_path, work, features, test_r, lists0, fp32, latency)
    timings["export_evaluate"] = time.perf_counter() - t
    card = _card(settings, per_seed, pop, fp32, variant_note[0], len(train_r), len(test_r))
    measured = {
        "name": NAME, "profile": settings.profile, "stamp": stamp, "code_version": code_version(),
        "variants": [{"version": VERSION, "latency_ms": latency}], "notes": [variant_note[1]],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "build_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    from pipeline.card import write_model_files
    from pipeline.ranker.card import render

    write_model_files(model_dir, config(), card, render(card), measured, rewrite=force)
    (model_dir / STAMP_FILE).write_text(json.dumps({"stamp": stamp}) + "\n", encoding="utf-8")
    return model_dir


def _torch_scorer(model: Any, features: d.Features) -> ev.Scorer:
    import torch

    from pipeline.ranker.model import INPUT_NAMES

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        f = feeds(features, users, items)
        with torch.no_grad():
            return np.asarray(model(*(torch.from_numpy(f[n]) for n in INPUT_NAMES)).numpy())

    return score


def _try_int8(
    src: Path, work: Path, features: d.Features, test_r: d.Ratings,
    lists: tuple[np.ndarray, np.ndarray], fp32: dict[str, float], latency: dict[str, float],
) -> tuple[str, str]:  # fmt: skip
    """Dynamic int8, never served (one version keeps serving simple). Returns the card's note
    (its quality) and this machine's (its latency, and whether it is faster at equal quality)."""
    from pipeline.ranker.export import onnx_scorer, serving_latency_ms
    from pipeline.variants import quantize_int8_dynamic

    dst = work / "model-int8.onnx"
    try:
        quantize_int8_dynamic(src, dst)
        m = ev.evaluate(onnx_scorer(dst, features), test_r, *lists)
        lat = serving_latency_ms(dst, src.parent, (1000,), repeats=50)
    except Exception as e:  # an experiment: its failure is reported, not fatal
        failed = f"int8 (dynamic) failed to build: {e!r:.200}"
        return failed, failed
    quality = (
        f"int8 (dynamic quantization): AUC {m['auc']:.4f}, NDCG@10 {m['ndcg@10']:.4f}, against "
        f"fp32's {fp32['auc']:.4f} and {fp32['ndcg@10']:.4f}; not served (one version keeps serving "
        "simple; its latency on the building machine: measured.json)"
    )
    speed = (
        f"int8 (dynamic): {lat['latency_ms_1000']:.2f} ms for 1,000 candidates against fp32's "
        f"{latency['latency_ms_1000']:.2f} ms"
    )
    equal = m["auc"] >= fp32["auc"] - 0.002 and m["ndcg@10"] >= fp32["ndcg@10"] - 0.005
    if equal and lat["latency_ms_1000"] < 0.9 * latency["latency_ms_1000"]:
        return quality, speed + ": faster at equal quality"
    return quality, speed + ": not faster at equal quality"


def config() -> dict[str, Any]:
    return {
        "name": NAME,
        "task": "ranking",
        "description": entry(NAME).description,
        # v2 clients send one row per candidate: the same limit as /rank's candidates
        "max_inputs_per_request": 1000,
        # Not spinning: a batch takes well under a millisecond, and between batches a spinning
        # intra-op thread takes the core the event loop needs (loadtests/RESULTS.md, Ranking)
        "engine": {"backend": "onnxruntime", "device": "cpu", "precision": "fp32",
                   "options": {"allow_spinning": False}},
        # queue size counts candidates: 64 requests of 1,000 candidates at most; a batch holds
        # up to four of them (fewer thread hand-offs per candidate at saturation; a batch of
        # 4,096 rows still scores in about 2 ms)
        "batching": {"max_batch_size": 4096, "max_queue_delay_us": 0, "max_queue_size": 65536},
        "ranking": {"user_table": "user_features.npy", "item_table": "item_features.npy",
                    "max_candidates": 1000, "part_size": 256, "fallback_unknown": False},
        "version_policy": {"specific": {"versions": [VERSION]}},
    }  # fmt: skip


def _card(
    settings: RankerSettings, per_seed: list[dict[str, float]], pop: list[dict[str, float]],
    fp32: dict[str, float], note: str, n_train: int, n_test: int,
) -> dict[str, Any]:  # fmt: skip
    import onnxruntime

    model, baseline = ev.mean(per_seed), ev.mean(pop)
    return {
        "name": NAME,
        "description": config()["description"],
        "default_version": VERSION,
        "variants": [
            {"version": VERSION, "name": "ranker", "precision": "fp32", "metrics": fp32},
        ],
        "mean_over_seeds": {"ranker": model, "popularity": baseline, "seeds": list(settings.seeds),
                            "per_seed": per_seed},
        "baselines": [{"name": "popularity", "metrics": baseline}],
        "targets": [
            {"target": "AUC >= popularity + 0.03", "result": _met(model["auc"] >= baseline["auc"] + 0.03),
             "detail": f"{model['auc']:.4f} vs {baseline['auc']:.4f}"},
            {"target": "NDCG@10 >= 1.2 x popularity",
             "result": _met(model["ndcg@10"] >= 1.2 * baseline["ndcg@10"]),
             "detail": f"{model['ndcg@10']:.4f} vs {baseline['ndcg@10']:.4f}"},
        ],
        "data": {"origin": d.ORIGIN, "licence": d.LICENCE, "train": n_train, "test": n_test},
        "settings": settings.as_dict(),
        "notes": [note],
        "environment": {"onnxruntime": onnxruntime.__version__},
    }  # fmt: skip


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"
