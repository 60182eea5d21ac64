"""The instance/thread split chosen from measured cost, the grid cache and its key, the budget,
and a real tiny model loaded with its cost model (cuts and estimates from the grid)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from engines.base import Engine, EngineSpec
from engines.registry import load_engine
from engines.text import TextRuntime
from engines.tokenization import TextEncoder
from server.metrics import Metrics
from server.repository.config import ModelConfig
from server.repository.cost_cache import GridCache
from server.repository.engine_plan import EnginePlan, plan_engines
from server.repository.loader import load_version, read_config
from server.scheduler.cost_model import CostModel
from tests.support.fake_engine import FakeEngine, ParallelClock
from tests.support.texts import SAMPLE_TEXTS

MS = 0.001
Cost = Callable[[int, int, int], float]  # (threads, rows, width) -> seconds


def config(**engine: object) -> ModelConfig:
    return ModelConfig.model_validate({
        "labels": ["a", "b", "c"], "max_length": 32, "engine": engine,
        "batching": {"max_batch_size": 8},
    })


class Rig:
    def __init__(self, tmp_path: Path, cost: Cost) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.artifact = tmp_path / "model.onnx"
        self.artifact.write_bytes(b"weights v1")
        self.cache = GridCache(tmp_path / "cache")
        self.clock = ParallelClock()
        self.cost = cost
        self.loaded: list[FakeEngine] = []

    def factory(self, spec: EngineSpec) -> Engine:
        engine = FakeEngine(cost=lambda r, w: self.cost(spec.threads, r, w), clock=self.clock)
        self.loaded.append(engine)
        return engine

    def plan(self, cfg: ModelConfig, cores: int = 2, budget_s: float = 60.0) -> EnginePlan:
        spec = EngineSpec(artifact=self.artifact, max_batch_size=8, max_length=32, threads=cores)
        return plan_engines(cfg, spec, cores, self.factory, budget_s=budget_s, cache=self.cache,
                            timer=self.clock)


def call_overhead(threads: int, rows: int, width: int) -> float:
    """Half of each call does not parallelize: two 1-thread instances beat one of 2 threads."""
    return 1 * MS + 0.01 * MS * rows * width / threads


def superlinear(threads: int, rows: int, width: int) -> float:
    """One thread is 4x slower than two: one 2-thread instance wins."""
    return (0.04 if threads == 1 else 0.01) * MS * rows * width


def test_the_split_follows_the_cost(tmp_path: Path) -> None:
    plan = Rig(tmp_path / "a", call_overhead).plan(config())
    assert (plan.instances, plan.threads) == (2, 1)
    assert len(plan.engines) == 2  # the measured engines serve
    assert "2x1" in plan.reason and "1x2" in plan.reason
    plan = Rig(tmp_path / "b", superlinear).plan(config())
    assert (plan.instances, plan.threads) == (1, 2)


def near_linear(threads: int, rows: int, width: int) -> float:
    """Two threads run a call 1.8x faster: two 1-thread instances gain 1.1x at saturation but
    serve a lone text 1.8x slower."""
    return (1.0 if threads == 1 else 0.55) * 0.01 * MS * rows * width


def test_more_instances_must_gain_more_at_saturation_than_they_lose_alone(tmp_path: Path) -> None:
    plan = Rig(tmp_path, near_linear).plan(config())
    one, two = sorted(plan.candidates, key=lambda s: s.instances)
    assert two.throughput(config()) > 1.05 * one.throughput(config())  # throughput alone: 2x1
    assert two.alone_s(config()) > 1.7 * one.alone_s(config())
    assert (plan.instances, plan.threads) == (1, 2)
    assert "ms alone" in plan.reason and "at saturation" in plan.reason


def test_a_split_of_several_instances_times_one_row_alone(tmp_path: Path) -> None:
    plan = Rig(tmp_path, call_overhead).plan(config())
    two = next(s for s in plan.candidates if s.instances == 2)
    assert two.grid is not None and len(two.grid.alone) == len(two.grid.lengths)
    assert two.grid.alone == pytest.approx([call_overhead(1, 1, n) for n in two.grid.lengths])
    one = next(s for s in plan.candidates if s.instances == 1)
    assert one.grid is not None and one.grid.alone == ()  # its first row is that already
    assert one.grid.alone_s() == one.grid.seconds[0]


def test_losing_candidates_are_closed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, call_overhead)
    plan = rig.plan(config())
    assert {id(e) for e in rig.loaded if not e.closed} == {id(e) for e in plan.engines}


def test_a_pinned_split_is_not_searched(tmp_path: Path) -> None:
    rig = Rig(tmp_path, call_overhead)
    plan = rig.plan(config(instance_count=1))
    assert (plan.instances, plan.threads) == (1, 2) and len(plan.candidates) == 1
    plan = Rig(tmp_path / "t", call_overhead).plan(config(threads=1))
    assert (plan.instances, plan.threads) == (1, 1)  # threads pinned: the config's one instance
    assert plan.grid is not None  # still measured: it cuts the batches
    plan = Rig(tmp_path / "n", call_overhead).plan(config(threads=1), budget_s=0.0)
    assert (plan.instances, plan.threads) == (1, 1)


def test_a_second_start_reads_the_grids_and_measures_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, call_overhead)
    first = rig.plan(config())
    loads = len(rig.loaded)
    second = rig.plan(config())
    assert len(rig.loaded) == loads  # nothing loaded to measure
    assert second.grid == first.grid and (second.instances, second.threads) == (2, 1)
    assert second.engines == [] and "cached" in second.reason


def test_another_model_file_or_thread_count_misses_the_cache(tmp_path: Path) -> None:
    rig = Rig(tmp_path, call_overhead)
    rig.plan(config(threads=1))
    loads = len(rig.loaded)
    rig.plan(config(threads=2))
    assert len(rig.loaded) > loads  # another engine spec
    loads = len(rig.loaded)
    rig.artifact.write_bytes(b"weights v2")
    rig.plan(config(threads=2))
    assert len(rig.loaded) > loads  # another model file


def test_the_budget_is_honoured(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lambda t, r, w: 0.1 * r * w * MS)  # 8 x 32 tokens: 26 ms a call
    rig.plan(config(threads=2), budget_s=0.05)
    assert rig.clock.now <= 0.05
    nothing = Rig(tmp_path / "none", call_overhead).plan(config(), budget_s=0.0)
    assert nothing.grid is None and (nothing.instances, nothing.threads) == (1, 2)


def test_a_unwritable_cache_still_serves(tmp_path: Path) -> None:
    rig = Rig(tmp_path, call_overhead)
    (tmp_path / "cache").write_text("a file, not a folder")
    assert rig.plan(config()).grid is not None


async def test_a_loaded_text_model_uses_its_cost_model(tiny_repository: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.symlink_to(tiny_repository)
    folder = repo / "tiny-sentiment"
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    assert "instance_count" not in raw.get("engine", {})
    cache = GridCache(tmp_path / "cache")
    with ThreadPoolExecutor(2) as executor:
        model = await load_version(folder, read_config(folder), 1, metrics=Metrics(),
                                   executor=executor, threads=2, cost_budget_s=10.0,
                                   cost_cache=cache)
        try:
            assert isinstance(model.batcher.latency, CostModel)
            assert model.config.engine.instance_count * model.config.engine.threads == 2
            assert len(model.engines) == model.config.engine.instance_count
            estimate = model.batcher.latency.estimate(1, 16)
            assert estimate is not None and estimate.compute_s > 0
        finally:
            await model.stop(drain_timeout_s=5.0)
    assert list(cache.folder.glob("*.json"))


async def test_without_a_budget_the_model_loads_as_configured(tiny_repository: Path) -> None:
    folder = tiny_repository / "tiny-sentiment"
    with ThreadPoolExecutor(2) as executor:
        model = await load_version(folder, read_config(folder), 1, metrics=Metrics(),
                                   executor=executor, threads=2, cost_budget_s=0.0)
        try:
            assert not isinstance(model.batcher.latency, CostModel)
            assert model.config.engine.instance_count == 1
        finally:
            await model.stop(drain_timeout_s=5.0)


class Recording(CostModel):
    def __init__(self, model: CostModel) -> None:
        self.__dict__.update(model.__dict__)
        self.calls: list[tuple[int, int]] = []

    def observe_call(self, rows: int, width: int, seconds: float) -> None:
        self.calls.append((rows, width))
        super().observe_call(rows, width, seconds)


def test_the_runtime_runs_the_cut_the_model_chose(tiny_repository: Path, tmp_path: Path) -> None:
    version = tiny_repository / "tiny-sentiment" / "1"
    engine = load_engine("onnxruntime", EngineSpec(artifact=version / "model.onnx", threads=1))
    encoder = TextEncoder.from_dir(version, 64)
    texts = [*SAMPLE_TEXTS, *(t * 6 for t in SAMPLE_TEXTS[:3])]
    rig = Rig(tmp_path, lambda t, r, w: 0.01 * MS * r * w)  # padding is all that costs
    plan = rig.plan(config(threads=1), cores=1)
    assert plan.grid is not None
    model = Recording(CostModel(plan.grid, 32, 64))
    whole = TextRuntime.for_engine(encoder, engine)
    cut = TextRuntime(encoder, whole.input_names, whole.output_name, cutter=model)
    a, b = whole.encode(texts), cut.encode(texts)
    assert len(b.calls) > 1 and b.padded_tokens < a.padded_tokens
    shapes = [(len(c.rows) if c.rows is not None else len(b), int(c.feeds["input_ids"].shape[1]))
              for c in b.calls]
    assert shapes == [(len(rows), width) for rows, width in model.cut(b.lengths)]
    np.testing.assert_allclose(whole.run(engine, a).probabilities, cut.run(engine, b).probabilities,
                               atol=1e-5)
    assert model.calls == shapes  # every call observed, as it ran
    engine.close()
