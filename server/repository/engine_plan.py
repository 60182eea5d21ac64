"""How many engine instances of how many threads a text model runs, chosen from measured cost.

Triton's instance groups, chosen by measurement: on ``cores`` CPUs the candidate splits are
``instances x threads = cores`` (instances up to :data:`MAX_CANDIDATE_INSTANCES`). Each
candidate's instances are loaded and timed together over the cost grid
(:func:`engines.cost_grid.measure_grid`, all instances computing each cell at once, so
contention is in the figures), and then one call of one row on one instance alone (what a lone
request costs on that split). The winner is the split that is best at both ends of the load, by
the product of

- its predicted throughput at saturation: ``instances x max over batch sizes b of
  b / cost(b, reference width)``, and
- its speed at low load: ``1 / cost of one row alone at the reference width``,

the reference width being half of ``max_length`` (at least 8 tokens). (Reported as the
geometric mean of the two, in texts/s.) More instances of fewer threads gain throughput at
saturation and lose latency at low load, where a lone request gets only its instance's threads:
they win only when the gain is the larger. On this 2-core reference machine, for the airline
student, two 1-thread instances served 16-text requests 1.2x faster at c=8 and c=32 but single
texts 0.8x as fast at c=1 (``loadtests/RESULTS.md``); throughput alone would pick them on
noise, the product keeps one 2-thread instance. The winner's engines are kept and serve; the
others are closed.

The config pins the split when it writes ``engine.instance_count`` or ``engine.threads`` (> 0):
then that split (``threads`` 0: the cores shared between the instances) is the only one, still
measured for the cost model; a GPU device, or a model that is not a tokenized-text model, is
not split either. Without a grid the config's split is used, as before.

Grids come from :class:`GridCache` when a start on the same model, engine settings and
machine measured them before. The whole planning runs within ``budget_s`` (the
``cost_grid_budget_s`` setting): loading and timing the candidates counts; a candidate that
finds no time left is not measured, and a model without any grid runs as before (the
config's split, :class:`MeasuredLatency`, ``sub_batch_tokens``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from engines.base import Engine, EngineSpec
from engines.cost_grid import CostGrid, grid_lengths, grid_sizes, measure_grid
from engines.warmup import is_text_model
from server.repository.config import ModelConfig
from server.repository.cost_cache import GridCache, cache_key
from server.scheduler.cost_model import CostModel

log = logging.getLogger("sluice.repository")

MAX_CANDIDATE_INSTANCES = 8

#: Builds one engine of the given spec (``engines.registry.load_engine`` with the backend bound).
EngineFactory = Callable[[EngineSpec], Engine]


@dataclass
class Split:
    """One candidate: ``instances`` engines of ``threads`` intra-op threads each."""

    instances: int
    threads: int
    grid: CostGrid | None = None
    source: str = ""
    """``cached`` or ``measured`` (empty: no grid)."""
    engines: list[Engine] = field(default_factory=list)
    """The measured engines, kept while this split may still win."""

    def throughput(self, config: ModelConfig) -> float:
        """Predicted texts/s at saturation, at the reference width (0: no grid)."""
        if self.grid is None:
            return 0.0
        model = CostModel(self.grid, config.batching.max_batch_size, config.max_length)
        return self.instances * model.throughput(reference_width(config.max_length))

    def alone_s(self, config: ModelConfig) -> float:
        """Predicted seconds of a lone one-text request at the reference width (inf: no grid)."""
        if self.grid is None:
            return math.inf
        width = reference_width(config.max_length)
        lengths = [float(n) for n in self.grid.lengths]
        return float(np.interp(float(width), lengths, self.grid.alone_s()))

    def score(self, config: ModelConfig) -> float:
        """Geometric mean of texts/s at saturation and of a lone text's speed (module docstring)."""
        alone = self.alone_s(config)
        if self.grid is None or not alone > 0:
            return 0.0
        return math.sqrt(self.throughput(config) / alone)


@dataclass
class EnginePlan:
    """What the loader serves with: the chosen split, its engines if already loaded, its grid."""

    instances: int
    threads: int
    grid: CostGrid | None
    engines: list[Engine]
    reason: str
    candidates: tuple[Split, ...] = ()


def reference_width(max_length: int) -> int:
    return max(min(8, max_length), max_length // 2)


def configured(config: ModelConfig, cores: int) -> Split:
    """The split the config gives: ``instance_count`` instances, ``threads`` or a share of the cores."""
    count = config.engine.instance_count
    return Split(count, config.engine.threads or max(1, cores // count))


def candidate_splits(config: ModelConfig, cores: int) -> list[Split]:
    """The splits worth measuring, the config's pins applied."""
    e = config.engine
    if "instance_count" in e.model_fields_set or e.threads > 0 or e.device != "cpu":
        return [configured(config, cores)]
    return [Split(i, cores // i) for i in range(1, min(cores, MAX_CANDIDATE_INSTANCES) + 1)
            if cores % i == 0]


def plan_engines(
    config: ModelConfig,
    spec: EngineSpec,
    cores: int,
    factory: EngineFactory,
    *,
    budget_s: float,
    cache: GridCache,
    timer: Callable[[], float] = time.perf_counter,
) -> EnginePlan:
    """Measure (or read) each candidate split's grid and choose one (see the module docstring)."""
    candidates = candidate_splits(config, cores)
    text = spec.max_length > 0 and config.task == "text-classification"
    if budget_s <= 0 or not text:
        only = configured(config, cores)
        return EnginePlan(only.instances, only.threads, None, [], "no cost grid (budget 0 or not text)")
    sizes = grid_sizes(config.batching.max_batch_size)
    lengths = grid_lengths(config.max_length)
    started = timer()
    best: Split | None = None
    try:
        for k, split in enumerate(candidates):
            key = cache_key(spec.artifact, {
                "backend": config.engine.backend, "device": spec.device,
                "precision": spec.precision, "threads": split.threads,
                "instances": split.instances, "sizes": sizes, "lengths": lengths,
                "options": sorted(spec.options.items()), "grid": 2,
            })
            split.grid = cache.get(key)
            split.source = "cached" if split.grid is not None else ""
            left = budget_s - (timer() - started)
            if split.grid is None and left > 0:
                split.engines = _load(factory, spec, split)
                if not is_text_model(split.engines[0].inputs):
                    _close(split.engines)
                    split.engines = []
                    break
                share = (budget_s - (timer() - started)) / (len(candidates) - k)
                grid = measure_grid(split.engines, sizes, lengths, share, timer=timer)
                if all(x != float("inf") for row in grid.seconds for x in row):
                    split.grid, split.source = grid, "measured"
                    cache.put(key, grid)
            if split.grid is not None and (best is None or split.score(config) > best.score(config)):
                if best is not None:
                    _close(best.engines)
                    best.engines = []
                best = split
            elif split is not best:
                _close(split.engines)
                split.engines = []
    except BaseException:
        for split in candidates:
            _close(split.engines)
        raise
    if best is None:
        fallback = configured(config, cores)
        return EnginePlan(fallback.instances, fallback.threads, None, [],
                          "no cost grid (no time left in cost_grid_budget_s)", tuple(candidates))
    figures = ", ".join(
        f"{s.instances}x{s.threads}: {s.score(config):.0f}/s ({s.throughput(config):.0f}/s at "
        f"saturation, {1e3 * s.alone_s(config):.2f} ms alone; {s.source or 'not measured'})"
        for s in candidates
    )
    return EnginePlan(best.instances, best.threads, best.grid, best.engines,
                      f"cost model, predicted balanced texts/s: {figures}", tuple(candidates))


def _load(factory: EngineFactory, spec: EngineSpec, split: Split) -> list[Engine]:
    engines: list[Engine] = []
    try:
        for _ in range(split.instances):
            engines.append(factory(_with_threads(spec, split.threads)))
            engines[-1].warmup()
    except BaseException:
        _close(engines)
        raise
    return engines


def _with_threads(spec: EngineSpec, threads: int) -> EngineSpec:
    return replace(spec, threads=threads)


def _close(engines: Sequence[Engine]) -> None:
    for engine in engines:
        try:
            engine.close()
        except Exception:
            log.exception("closing a measured engine failed")
